//! [`MySqlConnection`]: one `mysql::Conn` behind the core's `Connection` trait.

use mysql::prelude::Queryable;
use mysql::session_state_change::SessionStateChange;
use orm_core::backend::{Connection, ExecOutcome, ServerInfo};
use orm_core::row::Row;
use orm_core::value::Value;
use orm_core::DbError;
use orm_core::Result;

use crate::convert::{from_mysql, to_params};
use crate::error::from_driver;

/// An open MySQL/MariaDB connection.
pub struct MySqlConnection {
    conn: mysql::Conn,
    info: ServerInfo,
    id: u64,
    /// `@@innodb_rollback_on_timeout`, read the first time a lock wait
    /// timeout needs it.
    rollback_on_timeout: Option<bool>,
}

/// ER_LOCK_DEADLOCK: InnoDB rolled the transaction back (Galera's
/// certification failures use the same code).
const DEADLOCK: u16 = 1213;
/// ER_LOCK_WAIT_TIMEOUT: the statement is rolled back; the whole transaction
/// only with `innodb_rollback_on_timeout`.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

impl MySqlConnection {
    pub(crate) fn new(conn: mysql::Conn, info: ServerInfo) -> Self {
        let id = u64::from(conn.connection_id());
        MySqlConnection {
            conn,
            info,
            id,
            rollback_on_timeout: None,
        }
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
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecOutcome> {
        self.conn
            .exec_drop(sql, to_params(params))
            .map_err(from_driver)?;
        Ok(self.outcome())
    }

    fn execute_text(&mut self, sql: &str) -> Result<ExecOutcome> {
        self.conn.query_drop(sql).map_err(from_driver)?;
        Ok(self.outcome())
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
}
