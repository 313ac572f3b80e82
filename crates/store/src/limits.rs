//! Bounds on a query: what its text may be ([`check_sql`], on the query
//! language crate's [`vpcflow_querylang::sql`] bounds, which it re-exports)
//! and what running it may take ([`QueryLimits`]: a memory pool, a
//! deadline, and a cap on result bytes).

use std::time::Duration;

use vpcflow_querylang::sql::SqlTextError;
pub use vpcflow_querylang::sql::{
    MAX_SQL_BYTES, MAX_SQL_NESTING, MAX_SQL_NOTS, MAX_SQL_SET_OPERATIONS, MAX_SQL_TOKENS,
};

use crate::StoreError;

/// What running one query may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory for the query's operators (sorts, joins, aggregations,
    /// buffers): past it the query fails naming the limit.
    pub memory_bytes: usize,
    /// Wall-clock time from start to the last row: past it the query is
    /// cancelled.
    pub deadline: Duration,
    /// Bytes of the result (as Arrow arrays): past it the query fails.
    pub result_bytes: usize,
}

impl QueryLimits {
    /// The defaults of `vpcflow serve`'s records queries.
    pub const SERVER: QueryLimits = QueryLimits {
        memory_bytes: 512 * 1024 * 1024,
        deadline: Duration::from_secs(30),
        result_bytes: 64 * 1024 * 1024,
    };
    /// The defaults of the local `vpcflow query` (the user's own machine).
    pub const LOCAL: QueryLimits = QueryLimits {
        memory_bytes: 4 * 1024 * 1024 * 1024,
        deadline: Duration::from_secs(3600),
        result_bytes: 4 * 1024 * 1024 * 1024,
    };
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits::LOCAL
    }
}

fn over(what: String) -> StoreError {
    StoreError::Limit(what)
}

impl QueryLimits {
    /// The error of a query that ran past [`QueryLimits::deadline`].
    pub fn past_deadline(&self) -> StoreError {
        over(format!(
            "the query ran past its deadline of {} s and was cancelled",
            self.deadline.as_secs_f64()
        ))
    }

    /// The error of a query that needed more than
    /// [`QueryLimits::memory_bytes`]; `detail` says where, if known.
    pub fn out_of_memory(&self, detail: &str) -> StoreError {
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        over(format!(
            "the query needs more than its {} bytes of memory{detail}",
            self.memory_bytes
        ))
    }

    /// The error of a result over [`QueryLimits::result_bytes`].
    pub fn result_too_large(&self) -> StoreError {
        over(format!(
            "the result is over {} bytes; narrow the query or page it with a limit",
            self.result_bytes
        ))
    }
}

/// The error of a query its caller cancelled (the client went away).
pub fn cancelled() -> StoreError {
    StoreError::Query("the query was cancelled by its caller".into())
}

/// Refuses SQL over the text limits ([`vpcflow_querylang::sql::check_sql`]),
/// naming the one it passes.
pub fn check_sql(sql: &str) -> Result<(), StoreError> {
    vpcflow_querylang::sql::check_sql(sql).map_err(|e| match e {
        SqlTextError::OverLimit(m) => StoreError::Limit(m),
        SqlTextError::Syntax(_) => StoreError::Query(e.to_string()),
    })
}
