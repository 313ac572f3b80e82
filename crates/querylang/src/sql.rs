//! SQL's text bounds. Parsing and planning SQL are recursive (sqlparser,
//! DataFusion's planner and optimizer), and some shapes make sqlparser
//! backtrack exponentially (a chain of `NOT`s), so a few kilobytes of SQL
//! can overflow a stack or pin a core. [`check_sql`] refuses such text
//! before any recursive parser sees it, with a linear scan of sqlparser's
//! own (non-recursive) tokenizer; the error names the limit.
//!
//! The limits are the one definition: the search translator, the API and
//! the documentation quote these constants.

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

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

/// SQL text refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlTextError {
    /// Past one of the limits: the message names it.
    #[error("{0}")]
    OverLimit(String),
    /// The text does not tokenize (an unterminated string, say).
    #[error("SQL: {0}")]
    Syntax(String),
}

fn over(what: String) -> SqlTextError {
    SqlTextError::OverLimit(what)
}

/// Refuses SQL over the text limits, naming the one it passes. Linear in
/// the text, no recursion.
pub fn check_sql(sql: &str) -> Result<(), SqlTextError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(over(format!(
            "the SQL is {} bytes; at most {MAX_SQL_BYTES} are accepted",
            sql.len()
        )));
    }
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| SqlTextError::Syntax(e.to_string()))?;
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
            Err(SqlTextError::OverLimit(m)) => m,
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
