//! [`MySqlConnection`]: one `mysql::Conn` behind the core's `Connection` trait.

use mysql::prelude::Queryable;
use orm_core::backend::{Connection, ExecOutcome, ServerInfo};
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

    fn connection_id(&self) -> u64 {
        self.id
    }

    fn server_info(&self) -> &ServerInfo {
        &self.info
    }
}
