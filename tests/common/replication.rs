//! A MariaDB GTID primary and replica pair of private servers (each its own
//! data directory and loopback port, see `private_server.rs`): the primary
//! with its binary log, `--server-id=1` and `--gtid-strict-mode`, the replica
//! `--server-id=2 --read-only`, replicating from the primary with
//! `MASTER_USE_GTID=slave_pos`.

use std::time::Duration;

use mysql::prelude::Queryable;

use super::private_server::PrivateServer;

/// A running primary → replica pair. Both servers are killed and their
/// directories removed on drop.
pub struct Replication {
    /// The primary (writes, binary log).
    pub primary: PrivateServer,
    /// The replica (read-only, replicating from the primary).
    pub replica: PrivateServer,
}

impl Replication {
    /// Starts both servers and replication; returns once the replica runs
    /// both replication threads.
    pub fn start(tag: &str) -> Replication {
        let primary = PrivateServer::start_with(
            &format!("{tag}-primary"),
            &[
                "--log-bin=primary-bin",
                "--server-id=1",
                "--gtid-strict-mode=1",
                "--binlog-format=ROW",
            ],
        );
        let replica = PrivateServer::start_with(
            &format!("{tag}-replica"),
            &["--server-id=2", "--read-only=1", "--gtid-strict-mode=1"],
        );
        // Both servers created their own `test` database at start: the
        // replica must not replay the primary's CREATE DATABASE. The
        // primary's binary log starts empty from here.
        primary
            .admin()
            .query_drop("RESET MASTER")
            .expect("RESET MASTER on the primary");
        let mut admin = replica.admin();
        admin
            .query_drop(format!(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
                 MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                primary.port
            ))
            .expect("CHANGE MASTER TO on the replica");
        admin.query_drop("START SLAVE").expect("START SLAVE");
        let pair = Replication { primary, replica };
        pair.wait_running();
        pair
    }

    /// Waits until the replica's IO and SQL threads both run.
    pub fn wait_running(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (io, sql, error) = self.slave_threads();
            if io == "Yes" && sql == "Yes" {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replication did not start: IO {io}, SQL {sql}, last error: {error}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `Slave_IO_Running`, `Slave_SQL_Running` and the last error.
    fn slave_threads(&self) -> (String, String, String) {
        let mut admin = self.replica.admin();
        let row: mysql::Row = admin
            .query_first("SHOW SLAVE STATUS")
            .expect("SHOW SLAVE STATUS")
            .expect("the replica has a master configured");
        let text = |name: &str| -> String {
            row.get_opt::<Option<String>, _>(name)
                .and_then(|v| v.ok())
                .flatten()
                .unwrap_or_default()
        };
        let error = format!("{} {}", text("Last_IO_Error"), text("Last_SQL_Error"));
        (text("Slave_IO_Running"), text("Slave_SQL_Running"), error)
    }

    /// Runs `sql` on the primary with a plain connection (committed).
    pub fn primary_exec(&self, sql: &str) {
        self.primary
            .admin()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql} on the primary: {e}"));
    }

    /// Runs `sql` on the replica with a plain connection.
    pub fn replica_exec(&self, sql: &str) {
        self.replica
            .admin()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql} on the replica: {e}"));
    }

    /// The primary's `@@gtid_binlog_pos`.
    pub fn primary_position(&self) -> String {
        self.primary
            .admin()
            .query_first::<String, _>("SELECT @@gtid_binlog_pos")
            .expect("read @@gtid_binlog_pos")
            .unwrap_or_default()
    }

    /// Waits until the replica has applied everything the primary has.
    pub fn sync(&self) {
        let position = self.primary_position();
        let reached: Option<i64> = self
            .replica
            .admin()
            .exec_first("SELECT MASTER_GTID_WAIT(?, 30)", (position.clone(),))
            .expect("MASTER_GTID_WAIT on the replica")
            .flatten();
        assert_eq!(
            reached,
            Some(0),
            "the replica did not reach {position} in 30 s"
        );
    }

    /// The ids of `test.<table>` on the replica, read with a plain connection.
    pub fn replica_ids(&self, table: &str) -> Vec<i64> {
        self.replica
            .admin()
            .query(format!("SELECT id FROM test.{table} ORDER BY id"))
            .expect("read the replica")
    }
}
