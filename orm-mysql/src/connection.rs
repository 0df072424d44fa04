//! [`MySqlConnection`]: one `mysql::Conn` behind the core's `Connection` trait.

use mysql::prelude::Queryable;
use mysql::session_state_change::SessionStateChange;
use orm_core::backend::{
    AutoIncrement, BeginMode, Connection, ExecOutcome, ServerInfo, ServerKind,
};
use orm_core::row::Row;
use orm_core::value::Value;
use orm_core::DbError;
use orm_core::Result;

use std::time::Duration;

use crate::config::Timeouts;
use crate::convert::{from_mysql_as, into_params, to_params, ColumnKind};
use crate::error::{from_driver_during, Phase};
use crate::statement_cache::{StatementCache, CAPACITY};

/// An open MySQL/MariaDB connection.
pub struct MySqlConnection {
    conn: mysql::Conn,
    info: ServerInfo,
    id: u64,
    /// `@@innodb_rollback_on_timeout`, read the first time a lock wait
    /// timeout needs it.
    rollback_on_timeout: Option<bool>,
    timeouts: Timeouts,
    /// Autocommit off (`Implicit`, the default) or on (`autocommit_reads`).
    begin_mode: BeginMode,
    /// The server is a Galera cluster node (`wsrep_on`).
    galera: bool,
    /// This connection's prepared statements (the driver's own cache is off).
    statements: StatementCache,
    /// `query_each`'s column kinds and row, kept empty between result sets
    /// so that a query allocates neither (a `get` paid two allocations and
    /// two frees for them, ~350 instructions).
    spare: (Vec<ColumnKind>, Row),
}

/// ER_LOCK_DEADLOCK: InnoDB rolled the transaction back (Galera's
/// certification failures use the same code).
const DEADLOCK: u16 = 1213;
/// ER_LOCK_WAIT_TIMEOUT: the statement is rolled back; the whole transaction
/// only with `innodb_rollback_on_timeout`.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

impl MySqlConnection {
    /// Wraps a just-opened connection, whose socket read timeout is still
    /// the handshake's (`connect_timeout`); [`Self::finish_connect`] sets
    /// the statements' one.
    pub(crate) fn new(
        conn: mysql::Conn,
        info: ServerInfo,
        timeouts: Timeouts,
        begin_mode: BeginMode,
    ) -> Self {
        let id = u64::from(conn.connection_id());
        MySqlConnection {
            conn,
            info,
            id,
            rollback_on_timeout: None,
            timeouts,
            begin_mode,
            galera: false,
            statements: StatementCache::new(CAPACITY),
            spare: (Vec::new(), Row::default()),
        }
    }

    /// After a write the server accepted with warnings: a warning that it
    /// stored another value than the one sent (truncated text, a trailing
    /// space cut even in strict mode, an out-of-range number, an invalid
    /// date) becomes an error, so that no data is changed silently; the
    /// transaction's rollback discards the row.
    fn changed_value_warning(&mut self) -> Option<orm_core::Error> {
        /// 1264 out of range, 1265 data truncated, 1292 incorrect date/time
        /// value, 1366 incorrect value, 1406 data too long.
        const CHANGED: [u16; 5] = [1264, 1265, 1292, 1366, 1406];
        let rows: Vec<(String, u16, String)> = self.conn.query("SHOW WARNINGS").ok()?;
        let (_, code, message) = rows
            .into_iter()
            .find(|(_, code, _)| CHANGED.contains(code))?;
        Some(orm_core::Error::Database(DbError {
            kind: orm_core::DbErrorKind::Integrity,
            code: Some(code),
            sqlstate: None,
            message: format!(
                "the server would store another value than the one written ({message}); the write is \
                 refused so that no data changes silently. Widen the column or shorten the value"
            ),
        }))
    }

    /// An error from the driver while doing `phase`.
    fn error(&self, e: mysql::Error, phase: Phase) -> orm_core::Error {
        from_driver_during(e, &self.timeouts, phase)
    }

    /// Ends the opening: reads the session's facts (still under
    /// `connect_timeout`), then switches the socket to `read_timeout`.
    pub(crate) fn finish_connect(&mut self) -> Result<()> {
        self.read_session_facts()
            .map_err(|e| self.error(e, Phase::Connect))?;
        self.set_read_timeout(self.timeouts.read, Phase::Connect)
    }

    /// On a Galera node, refuses the connection when the node is not ready
    /// for application use (`wsrep_ready = OFF`: it is not in the cluster's
    /// primary component, or still joining), so that an engine with a
    /// failover host list moves on to the next host instead of handing out a
    /// connection whose every statement fails with 1047. One round trip, on
    /// Galera only; `SHOW` is answered even by a node that is not ready.
    pub(crate) fn check_node_ready(&mut self, address: &str) -> Result<()> {
        if !self.galera {
            return Ok(());
        }
        let row: Option<(String, String)> = self
            .conn
            .query_first("SHOW GLOBAL STATUS LIKE 'wsrep_ready'")
            .map_err(|e| self.error(e, Phase::Connect))?;
        match row {
            Some((_, ready)) if !ready.eq_ignore_ascii_case("ON") => {
                Err(orm_core::Error::Database(DbError {
                    kind: orm_core::DbErrorKind::Connect,
                    code: Some(crate::error::NODE_NOT_READY),
                    sqlstate: Some("08S01".into()),
                    message: format!(
                        "cannot use the Galera node at {address}: it is not ready for application use \
                         (wsrep_ready = {ready}: it is not in the cluster's primary component, or \
                         is still joining); list the cluster's other nodes in the URL \
                         (mysql://h1:p1,h2:p2/db) to fail over to them, or retry later"
                    ),
                }))
            }
            _ => Ok(()),
        }
    }

    /// Sets the socket's read timeout.
    fn set_read_timeout(&self, timeout: Option<Duration>, phase: Phase) -> Result<()> {
        set_socket_read_timeout(&self.conn, timeout)
            .map_err(|e| self.error(mysql::Error::IoError(e), phase))
    }

    /// Reads the per-session facts of [`ServerInfo`] on this connection:
    /// its auto-increment settings and `max_allowed_packet`. One round trip.
    /// `SHOW VARIABLES` lists only the variables the server has, so the same
    /// statement works on MySQL, MariaDB and Galera.
    pub(crate) fn read_session_facts(&mut self) -> std::result::Result<(), mysql::Error> {
        let rows: Vec<(String, String)> = self.conn.query(
            "SHOW SESSION VARIABLES WHERE Variable_name IN ('auto_increment_increment', \
             'auto_increment_offset', 'innodb_autoinc_lock_mode', 'wsrep_on', \
             'wsrep_auto_increment_control', 'max_allowed_packet', 'innodb_rollback_on_timeout')",
        )?;
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
                "innodb_rollback_on_timeout" => self.rollback_on_timeout = Some(on),
                "max_allowed_packet" => {
                    if let Ok(n) = value.parse() {
                        self.info.max_allowed_packet = n;
                    }
                }
                _ => {}
            }
        }
        self.galera = wsrep_on;
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

    /// The prepared statement for `sql`: the cached one, or prepared now
    /// (closing on the server the one the cache evicts to keep it).
    fn statement(&mut self, sql: &str) -> std::result::Result<mysql::Statement, mysql::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.conn.prep(sql)?;
        if let Some(evicted) = self.statements.insert(sql, statement.clone()) {
            self.conn.close(evicted)?;
        }
        Ok(statement)
    }

    /// Runs a statement with its parameters in the driver's form (the
    /// body of `execute` and `execute_owned`).
    fn execute_params(&mut self, sql: &str, params: mysql::Params) -> Result<ExecOutcome> {
        let done = self
            .statement(sql)
            .and_then(|statement| self.conn.exec_drop(&statement, params));
        if let Err(e) = done {
            forget_unknown_statement(&mut self.statements, sql, &e);
            return Err(self.error(e, Phase::Statement));
        }
        let outcome = self.outcome();
        if self.conn.warnings() > 0 {
            if let Some(e) = self.changed_value_warning() {
                return Err(e);
            }
        }
        self.after_statement(sql);
        Ok(outcome)
    }

    fn outcome(&self) -> ExecOutcome {
        let id = self.conn.last_insert_id();
        ExecOutcome {
            affected_rows: self.conn.affected_rows(),
            last_insert_id: (id != 0).then_some(id),
            in_transaction: self.transaction_state(),
        }
    }

    /// The transaction state the server reported in the last OK packet
    /// (`session_track_transaction_info = STATE`, set by the connector): the
    /// first character is `T` (explicit), `I` (implicit) or `_` (none).
    fn transaction_state(&self) -> Option<bool> {
        let changes = self.conn.session_state_changes().ok()?;
        changes.iter().find_map(|info| match info.decode() {
            Ok(SessionStateChange::TransactionState(state)) => {
                state.as_bytes().first().map(|c| *c != b'_')
            }
            _ => None,
        })
    }
}

impl Connection for MySqlConnection {
    fn begin_mode(&self) -> BeginMode {
        self.begin_mode
    }

    /// On MariaDB, after a statement that may commit implicitly, asks
    /// `@@in_transaction` (one round trip, only for such statements).
    fn transaction_still_open(&mut self, sql: &str) -> Option<bool> {
        if self.info.kind != ServerKind::MariaDb || !may_commit_implicitly(sql) {
            return None;
        }
        let open: Option<i64> = self.conn.query_first("SELECT @@in_transaction").ok()?;
        open.map(|v| v != 0)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        self.execute_params(sql, to_params(params))
    }

    fn execute_owned(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecOutcome> {
        self.execute_params(sql, into_params(params))
    }

    fn execute_text(&mut self, sql: &str) -> Result<ExecOutcome> {
        if let Err(e) = self.conn.query_drop(sql) {
            return Err(self.error(e, Phase::Statement));
        }
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
        self.query_each(sql, params, &mut |row| each(row.take_all()))
    }

    /// One `Row` for the whole result set, cleared and refilled per row.
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&mut Row) -> Result<()>,
    ) -> Result<()> {
        let timeouts = self.timeouts;
        let error = |e| from_driver_during(e, &timeouts, Phase::Statement);
        let statement = match self.statement(sql) {
            Ok(statement) => statement,
            Err(e) => return Err(error(e)),
        };
        let mut result = match self.conn.exec_iter(&statement, to_params(params)) {
            Ok(result) => result,
            Err(e) => {
                forget_unknown_statement(&mut self.statements, sql, &e);
                return Err(error(e));
            }
        };
        // The first result set only; dropping `result` drains anything left.
        // Every row of a set shares its column metadata: read what the
        // conversion needs (type, sign, charset) once, not per row or value
        // (the per-row Arc clone and drop were ~10% of loading 10,000 rows in
        // the workloads bench's profile, the per-value reads ~5%).
        // The row handed to `each` is the connection's spare one, refilled
        // for each row.
        let (mut kinds, mut values) = std::mem::take(&mut self.spare);
        kinds.clear();
        for row in result.by_ref() {
            let row = row.map_err(error)?;
            if kinds.is_empty() {
                kinds.extend(row.columns_ref().iter().map(ColumnKind::of));
            }
            values.clear();
            for (value, kind) in row.unwrap_raw().into_iter().zip(kinds.iter()) {
                values.push(from_mysql_as(value.unwrap_or(mysql::Value::NULL), *kind));
            }
            each(&mut values)?;
        }
        drop(result);
        values.clear();
        self.spare = (kinds, values);
        // An INSERT ... RETURNING writes too: the same check as `execute`.
        let writes = sql
            .trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("INSERT"));
        if writes && self.conn.warnings() > 0 {
            if let Some(e) = self.changed_value_warning() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Pings under `ping_timeout` (then restores `read_timeout`), so a
    /// half-open connection is found in seconds.
    fn ping(&mut self) -> Result<()> {
        let short = self.timeouts.ping.is_some() && self.timeouts.ping != self.timeouts.read;
        if short {
            self.set_read_timeout(self.timeouts.ping, Phase::Ping)?;
        }
        if let Err(e) = self.conn.ping() {
            return Err(self.error(e, Phase::Ping));
        }
        if short {
            self.set_read_timeout(self.timeouts.read, Phase::Ping)?;
        }
        Ok(())
    }

    fn ended_transaction(&mut self, error: &DbError) -> bool {
        match error.code {
            Some(DEADLOCK) => true,
            Some(LOCK_WAIT_TIMEOUT) => {
                if self.rollback_on_timeout.is_none() {
                    // Unknown when the query fails: assume the worst (the
                    // transaction is gone), which only costs a rollback.
                    let on: Option<i64> = self
                        .conn
                        .query_first("SELECT @@innodb_rollback_on_timeout")
                        .ok()
                        .flatten();
                    self.rollback_on_timeout = Some(!matches!(on, Some(0)));
                }
                self.rollback_on_timeout.unwrap_or(true)
            }
            _ => false,
        }
    }

    fn connection_id(&self) -> u64 {
        self.id
    }

    fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// `last_gtid` from the last OK packet's session state changes (MariaDB
    /// reports it after a `COMMIT` when `session_track_system_variables`
    /// includes `last_gtid`).
    fn tracked_commit_position(&self) -> Option<String> {
        let changes = self.conn.session_state_changes().ok()?;
        changes.iter().find_map(|info| match info.decode() {
            Ok(SessionStateChange::SystemVariables(vars)) => vars
                .iter()
                .find(|v| v.name_bytes().eq_ignore_ascii_case(b"last_gtid"))
                .map(|v| v.value_str().into_owned())
                .filter(|v| !v.is_empty()),
            _ => None,
        })
    }

    fn refresh_server_info(&mut self) -> Result<()> {
        self.read_session_facts()
            .map_err(|e| self.error(e, Phase::Statement))
    }
}

/// After `sql`'s statement failed with `e`: if the server no longer knows
/// the statement (ER_UNKNOWN_STMT_HANDLER; nothing here closes one the cache
/// holds, but a statement sent by other means could), forgets it, so that
/// the next use prepares it again.
fn forget_unknown_statement(statements: &mut StatementCache, sql: &str, e: &mysql::Error) {
    const UNKNOWN_STMT_HANDLER: u16 = 1243;
    if matches!(e, mysql::Error::MySqlError(m) if m.code == UNKNOWN_STMT_HANDLER) {
        statements.remove(sql);
    }
}

/// Sets the read timeout of `conn`'s socket. The `mysql` crate applies
/// its timeouts only when connecting; this changes it on the open socket
/// (a socket option, shared by every descriptor of the socket).
#[cfg(unix)]
fn set_socket_read_timeout(conn: &mysql::Conn, timeout: Option<Duration>) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor is that of `conn`'s open socket, and `conn` is
    // borrowed for this whole call, so it stays open while `fd` is used. Only
    // the duplicate made from it is owned, and closed, here.
    let fd = unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) };
    let socket = std::net::TcpStream::from(fd.try_clone_to_owned()?);
    socket.set_read_timeout(timeout)
}

/// Elsewhere the socket keeps the timeout it was opened with.
#[cfg(not(unix))]
fn set_socket_read_timeout(_conn: &mysql::Conn, _timeout: Option<Duration>) -> std::io::Result<()> {
    Ok(())
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

/// Whether `sql` is a statement that may commit the open transaction
/// implicitly (DDL, locking, administration; MariaDB's list).
fn may_commit_implicitly(sql: &str) -> bool {
    const WORDS: [&str; 20] = [
        "alter",
        "create",
        "drop",
        "rename",
        "truncate",
        "lock",
        "unlock",
        "grant",
        "revoke",
        "analyze",
        "optimize",
        "repair",
        "flush",
        "install",
        "uninstall",
        "load",
        "begin",
        "start",
        "call",
        "reset",
    ];
    let sql = sql.trim_start();
    let first = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    WORDS.iter().any(|w| first.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::{may_change_session_facts, may_commit_implicitly};

    #[test]
    fn statements_that_may_commit_implicitly() {
        assert!(may_commit_implicitly("CREATE TABLE t (id INT)"));
        assert!(may_commit_implicitly("  drop table t"));
        assert!(may_commit_implicitly("LOCK TABLES t WRITE"));
        assert!(!may_commit_implicitly("INSERT INTO t VALUES (1)"));
        assert!(!may_commit_implicitly("SET @x = 1"));
        assert!(!may_commit_implicitly("created"));
        assert!(!may_commit_implicitly(""));
    }

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
