//! [`MySqlConnection`]: one `mysql::Conn` behind the core's `Connection` trait.

use mysql::prelude::Queryable;
use orm_core::backend::{AutoIncrement, Connection, ExecOutcome, ServerInfo};
use orm_core::row::Row;
use orm_core::value::Value;
use orm_core::Result;

use crate::convert::{from_mysql, to_params};
use crate::error::from_driver;

/// An open MySQL/MariaDB connection.
pub struct MySqlConnection {
    conn: mysql::Conn,
    info: ServerInfo,
    id: u64,
}

impl MySqlConnection {
    pub(crate) fn new(conn: mysql::Conn, info: ServerInfo) -> Self {
        let id = u64::from(conn.connection_id());
        MySqlConnection { conn, info, id }
    }

    /// Reads the per-session facts of [`ServerInfo`] on this connection:
    /// its auto-increment settings and `max_allowed_packet`. One round trip.
    /// `SHOW VARIABLES` lists only the variables the server has, so the same
    /// statement works on MySQL, MariaDB and Galera.
    pub(crate) fn read_session_facts(&mut self) -> Result<()> {
        let rows: Vec<(String, String)> = self
            .conn
            .query(
                "SHOW SESSION VARIABLES WHERE Variable_name IN ('auto_increment_increment', \
                 'auto_increment_offset', 'innodb_autoinc_lock_mode', 'wsrep_on', \
                 'wsrep_auto_increment_control', 'max_allowed_packet')",
            )
            .map_err(from_driver)?;
        let mut ai = AutoIncrement::default();
        let (mut wsrep_on, mut wsrep_control) = (false, false);
        for (name, value) in rows {
            let on = value.eq_ignore_ascii_case("on") || value == "1";
            match name.to_ascii_lowercase().as_str() {
                "auto_increment_increment" => ai.increment = value.parse().ok(),
                "auto_increment_offset" => ai.offset = value.parse().ok(),
                "innodb_autoinc_lock_mode" => ai.lock_mode = value.parse().ok(),
                "wsrep_on" => wsrep_on = on,
                "wsrep_auto_increment_control" => wsrep_control = on,
                "max_allowed_packet" => {
                    if let Ok(n) = value.parse() {
                        self.info.max_allowed_packet = n;
                    }
                }
                _ => {}
            }
        }
        ai.galera_control = wsrep_on && wsrep_control;
        self.info.auto_increment = ai;
        Ok(())
    }

    /// After a statement that may have changed the session's auto-increment
    /// settings, reads them again. If that fails they become unknown, which
    /// makes the INSERT path send one row per statement (never a wrong key);
    /// a lost connection then surfaces on the next statement.
    fn after_statement(&mut self, sql: &str) {
        if may_change_session_facts(sql) && self.read_session_facts().is_err() {
            self.info.auto_increment = AutoIncrement::default();
        }
    }

    fn outcome(&self) -> ExecOutcome {
        let id = self.conn.last_insert_id();
        ExecOutcome {
            affected_rows: self.conn.affected_rows(),
            last_insert_id: (id != 0).then_some(id),
        }
    }
}

impl Connection for MySqlConnection {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        self.conn
            .exec_drop(sql, to_params(params))
            .map_err(from_driver)?;
        let outcome = self.outcome();
        self.after_statement(sql);
        Ok(outcome)
    }

    fn execute_text(&mut self, sql: &str) -> Result<ExecOutcome> {
        self.conn.query_drop(sql).map_err(from_driver)?;
        let outcome = self.outcome();
        self.after_statement(sql);
        Ok(outcome)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let mut result = self
            .conn
            .exec_iter(sql, to_params(params))
            .map_err(from_driver)?;
        // The first result set only; dropping `result` drains anything left.
        // Every row of a set shares its column metadata: take it once, not
        // per row (the per-row Arc clone and drop were ~10% of loading 10,000
        // rows in the workloads bench's profile).
        let mut columns: Option<std::sync::Arc<[mysql::Column]>> = None;
        for row in result.by_ref() {
            let row = row.map_err(from_driver)?;
            let columns = columns.get_or_insert_with(|| row.columns());
            let raw = row.unwrap_raw();
            let mut values = Vec::with_capacity(raw.len());
            for (value, column) in raw.into_iter().zip(columns.iter()) {
                values.push(from_mysql(value.unwrap_or(mysql::Value::NULL), column)?);
            }
            each(Row::new(values))?;
        }
        Ok(())
    }

    fn ping(&mut self) -> Result<()> {
        self.conn.ping().map_err(from_driver)
    }

    fn connection_id(&self) -> u64 {
        self.id
    }

    fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    fn refresh_server_info(&mut self) -> Result<()> {
        self.read_session_facts()
    }
}

/// Whether `sql` may change this session's auto-increment settings: a `SET`
/// that mentions `auto_increment_` (`SET SESSION auto_increment_increment = 3`,
/// `SET @@auto_increment_offset = 2`), or a `CALL` (a procedure may run one).
fn may_change_session_facts(sql: &str) -> bool {
    let sql = sql.trim_start();
    let starts = |word: &str| {
        sql.len() > word.len()
            && sql.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            && !sql.as_bytes()[word.len()].is_ascii_alphanumeric()
    };
    if starts("call") {
        return true;
    }
    starts("set")
        && sql
            .as_bytes()
            .windows(b"auto_increment_".len())
            .any(|w| w.eq_ignore_ascii_case(b"auto_increment_"))
}

#[cfg(test)]
mod tests {
    use super::may_change_session_facts;

    #[test]
    fn statements_that_may_change_the_increment() {
        for sql in [
            "SET SESSION auto_increment_increment = 3",
            "  set @@Auto_Increment_Offset=2",
            "SET sql_mode = '', AUTO_INCREMENT_INCREMENT = 1",
            "CALL setup()",
            "call\tsetup()",
        ] {
            assert!(may_change_session_facts(sql), "{sql}");
        }
        for sql in [
            "INSERT INTO t (auto_increment_x) VALUES (1)",
            "SET SESSION wait_timeout = 1",
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)",
            "SETTINGS",
            "CALLER",
            "SET",
            "",
        ] {
            assert!(!may_change_session_facts(sql), "{sql}");
        }
    }
}
