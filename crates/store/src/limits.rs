//! Bounds on a query: what its text may be, and what running it may take.
//!
//! SQL parsing and planning are recursive (sqlparser, DataFusion's planner
//! and optimizer), and some shapes make sqlparser backtrack exponentially
//! (a chain of `NOT`s), so a few kilobytes of SQL can overflow a stack or
//! pin a core. [`check_sql`] refuses such text before any recursive parser
//! sees it, with a linear scan of sqlparser's own (non-recursive)
//! tokenizer; the error names the limit. Running is bounded by
//! [`QueryLimits`]: a memory pool, a deadline, and a cap on result bytes.
//!
//! The limits are the one definition: the search translator, the API and
//! the documentation quote these constants.

use std::time::Duration;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::StoreError;

/// Longest SQL text accepted, in bytes.
pub const MAX_SQL_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses in SQL.
pub const MAX_SQL_NESTING: usize = 32;
/// Most tokens (words, numbers, strings, operators) in SQL.
pub const MAX_SQL_TOKENS: usize = 1_000;
/// Most `NOT`s in SQL (sqlparser's cost doubles with each).
pub const MAX_SQL_NOTS: usize = 16;
/// Most set operations (`UNION`, `INTERSECT`, `EXCEPT`) in SQL.
pub const MAX_SQL_SET_OPERATIONS: usize = 32;

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

/// Refuses SQL over the text limits, naming the one it passes. Linear in
/// the text, no recursion.
pub fn check_sql(sql: &str) -> Result<(), StoreError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(over(format!(
            "the SQL is {} bytes; at most {MAX_SQL_BYTES} are accepted",
            sql.len()
        )));
    }
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| StoreError::Query(format!("SQL: {e}")))?;
    let (mut depth, mut deepest, mut count, mut nots, mut sets) = (0usize, 0, 0, 0, 0);
    for t in &tokens {
        match t {
            Token::Whitespace(_) | Token::EOF => continue,
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::NOT => nots += 1,
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT => sets += 1,
                _ => {}
            },
            Token::ExclamationMark => nots += 1,
            _ => {}
        }
        count += 1;
    }
    if deepest > MAX_SQL_NESTING {
        return Err(over(format!(
            "the SQL nests parentheses {deepest} deep; at most {MAX_SQL_NESTING} are accepted"
        )));
    }
    if count > MAX_SQL_TOKENS {
        return Err(over(format!(
            "the SQL has {count} tokens; at most {MAX_SQL_TOKENS} are accepted"
        )));
    }
    if nots > MAX_SQL_NOTS {
        return Err(over(format!(
            "the SQL has {nots} NOTs; at most {MAX_SQL_NOTS} are accepted"
        )));
    }
    if sets > MAX_SQL_SET_OPERATIONS {
        return Err(over(format!(
            "the SQL has {sets} set operations (UNION, INTERSECT, EXCEPT); at most {MAX_SQL_SET_OPERATIONS} are accepted"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match check_sql(sql) {
            Err(StoreError::Limit(m)) => m,
            other => panic!("{sql:.60}: {other:?}"),
        }
    }

    #[test]
    fn ordinary_queries_pass() {
        for sql in [
            "SELECT srcaddr, sum(bytes) AS b FROM records WHERE action = 'REJECT' GROUP BY 1 ORDER BY b DESC LIMIT 10",
            "SELECT * FROM records WHERE NOT (dstport = 22 OR dstport = 3389) AND srcaddr <> '10.0.0.1'",
            "SELECT 'it''s ((((((((((((((((((((((((((((((((((((' AS s",
        ] {
            check_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn the_hardening_findings_are_refused_naming_the_limit() {
        let parens = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(refused(&parens).contains("nests parentheses"));
        let deep = format!("SELECT {}1{}", "(".repeat(33), ")".repeat(33));
        assert!(refused(&deep).contains("at most 32"));
        let sum = format!("SELECT 1{}", "+1".repeat(1000));
        assert!(refused(&sum).contains("tokens"));
        let unions = "SELECT 1 UNION ALL ".repeat(100) + "SELECT 1";
        assert!(refused(&unions).contains("set operations"));
        let ors = format!(
            "SELECT * FROM records WHERE {}",
            vec!["dstport = 1"; 1000].join(" OR ")
        );
        assert!(refused(&ors).contains("bytes") || refused(&ors).contains("tokens"));
        let nots = format!("SELECT * FROM records WHERE {}true", "NOT ".repeat(40));
        assert!(refused(&nots).contains("NOTs"));
        let not_parens = format!(
            "SELECT * FROM records WHERE {}true{}",
            "NOT (".repeat(20),
            ")".repeat(20)
        );
        assert!(refused(&not_parens).contains("NOTs"));
        assert!(refused(&"x".repeat(MAX_SQL_BYTES + 1)).contains("bytes"));
    }
}
