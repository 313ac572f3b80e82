//! The field search of `vpcflow query`, turned into an SQL condition.
//!
//! `action:REJECT AND dstport:22`, `srcaddr:10.0.0.0/8`, `NOT protocol:17`,
//! `bytes>1000000`, `(dstport:22 OR dstport:3389) interface-id:abc*`.
//! Terms side by side are ANDed; NOT binds tightest, then AND, then OR.
//! Field names are the seed's (`log-status`) or the stored columns'
//! (`log_status`); an unknown field, a malformed value or a dangling
//! operator is an error naming it.
//!
//! A search over [`MAX_SEARCH_BYTES`], nested deeper than
//! [`MAX_SEARCH_NESTING`], with more than [`MAX_SEARCH_TERMS`] terms or
//! more `NOT`s than the SQL front end takes is refused, naming the limit,
//! before the (recursive) parser sees it.

use crate::columns::{ColumnType, PARTITIONS, columns};
use crate::sql::MAX_SQL_NOTS;

/// A search that cannot be turned into SQL: the message names what is
/// wrong (an unknown field, a malformed value, a passed limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SearchError(String);

type Result<T> = std::result::Result<T, SearchError>;

macro_rules! bail {
    ($($t:tt)*) => {
        return Err(SearchError(format!($($t)*)))
    };
}

/// Longest search accepted, in bytes.
pub const MAX_SEARCH_BYTES: usize = 4096;
/// Deepest nesting of parentheses in a search.
pub const MAX_SEARCH_NESTING: usize = 16;
/// Most terms (field:value) in a search.
pub const MAX_SEARCH_TERMS: usize = 100;

/// The columns a search can name, numeric then text, from the store's
/// schema (derived from the record's field table) and its partitions. The
/// timestamps are SQL's: a search has `start` and `end`.
fn searchable() -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut numeric, mut text) = (Vec::new(), Vec::new());
    for c in columns() {
        match c.ty() {
            ColumnType::Number => numeric.push(c.name()),
            ColumnType::Text => text.push(c.name()),
            ColumnType::Timestamp => {}
        }
    }
    for p in PARTITIONS {
        if p.number {
            numeric.push(p.name);
        } else {
            text.push(p.name);
        }
    }
    (numeric, text)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn tokens(s: &str) -> Vec<String> {
    let spaced = s.replace('(', " ( ").replace(')', " ) ");
    spaced.split_whitespace().map(str::to_string).collect()
}

fn atom(t: &str) -> Result<String> {
    let ops = [">=", "<=", ">", "<", ":", "="];
    let Some((i, op)) = ops
        .iter()
        .filter_map(|op| t.find(op).map(|i| (i, *op)))
        .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
    else {
        bail!("`{t}` is not a term like field:value or field>number");
    };
    let field = t[..i].replace('-', "_").to_ascii_lowercase();
    let value = &t[i + op.len()..];
    if value.is_empty() {
        bail!("`{t}`: no value after `{op}`");
    }
    let col = format!("\"{field}\"");
    let (numeric, text) = searchable();
    if numeric.contains(&field.as_str()) {
        let n: u64 = value.parse().map_err(|_| {
            SearchError(format!(
                "`{t}`: {field} takes a whole number, not `{value}`"
            ))
        })?;
        let op = if op == ":" { "=" } else { op };
        return Ok(format!("{col} {op} {n}"));
    }
    if !text.contains(&field.as_str()) {
        bail!(
            "`{t}`: unknown field `{field}`; fields: {}, {}",
            numeric.join(", "),
            text.join(", ")
        );
    }
    if op != ":" && op != "=" {
        bail!("`{t}`: {field} is text; use {field}:value");
    }
    if (field == "srcaddr" || field == "dstaddr") && value.contains('/') {
        return Ok(format!("cidr_contains({col}, {})", quote(value)));
    }
    let value = match field.as_str() {
        "action" | "log_status" => value.to_ascii_uppercase(),
        "direction" => value.to_ascii_lowercase(),
        _ => value.to_string(),
    };
    if value.contains('*') {
        let like = value
            .replace('%', "\\%")
            .replace('_', "\\_")
            .replace('*', "%");
        return Ok(format!("{col} LIKE {}", quote(&like)));
    }
    Ok(format!("{col} = {}", quote(&value)))
}

struct Parser {
    t: Vec<String>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(String::as_str)
    }
    fn or(&mut self) -> Result<String> {
        let mut parts = vec![self.and()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("OR")) {
            self.i += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("({})", parts.join(" OR "))
        })
    }
    fn and(&mut self) -> Result<String> {
        let mut parts = vec![self.not()?];
        loop {
            match self.peek() {
                Some(t) if t.eq_ignore_ascii_case("AND") => {
                    self.i += 1;
                    parts.push(self.not()?);
                }
                Some(t) if !t.eq_ignore_ascii_case("OR") && t != ")" => parts.push(self.not()?),
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("({})", parts.join(" AND "))
        })
    }
    fn not(&mut self) -> Result<String> {
        match self.peek() {
            Some(t) if t.eq_ignore_ascii_case("NOT") => {
                self.i += 1;
                Ok(format!("(NOT {})", self.not()?))
            }
            Some("(") => {
                self.i += 1;
                let e = self.or()?;
                if self.peek() != Some(")") {
                    bail!("missing `)`");
                }
                self.i += 1;
                Ok(e)
            }
            Some(t)
                if t.eq_ignore_ascii_case("AND") || t.eq_ignore_ascii_case("OR") || t == ")" =>
            {
                bail!("`{t}` where a term was expected")
            }
            Some(t) => {
                let t = t.to_string();
                self.i += 1;
                atom(&t)
            }
            None => bail!("the search ends where a term was expected"),
        }
    }
}

/// Refuses a search over the limits, naming the one it passes.
fn check_limits(search: &str, tokens: &[String]) -> Result<()> {
    if search.len() > MAX_SEARCH_BYTES {
        bail!(
            "the search is {} bytes; at most {MAX_SEARCH_BYTES} are accepted",
            search.len()
        );
    }
    let (mut depth, mut deepest, mut terms, mut nots) = (0usize, 0, 0, 0);
    for t in tokens {
        match t.as_str() {
            "(" => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ")" => depth = depth.saturating_sub(1),
            t if t.eq_ignore_ascii_case("NOT") => nots += 1,
            t if t.eq_ignore_ascii_case("AND") || t.eq_ignore_ascii_case("OR") => {}
            _ => terms += 1,
        }
    }
    if deepest > MAX_SEARCH_NESTING {
        bail!(
            "the search nests parentheses {deepest} deep; at most {MAX_SEARCH_NESTING} are accepted"
        );
    }
    if terms > MAX_SEARCH_TERMS {
        bail!("the search has {terms} terms; at most {MAX_SEARCH_TERMS} are accepted");
    }
    if nots > MAX_SQL_NOTS {
        bail!("the search has {nots} NOTs; at most {MAX_SQL_NOTS} are accepted");
    }
    Ok(())
}

/// The SQL condition of a search.
pub fn to_sql(search: &str) -> Result<String> {
    let t = tokens(search);
    check_limits(search, &t)?;
    let mut p = Parser { t, i: 0 };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        bail!("unexpected `{t}`");
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_examples() {
        assert_eq!(
            to_sql("action:REJECT AND dstport:22").unwrap(),
            "(\"action\" = 'REJECT' AND \"dstport\" = 22)"
        );
        assert_eq!(
            to_sql("srcaddr:10.0.0.0/8").unwrap(),
            "cidr_contains(\"srcaddr\", '10.0.0.0/8')"
        );
        assert_eq!(
            to_sql("NOT protocol:17").unwrap(),
            "(NOT \"protocol\" = 17)"
        );
        assert_eq!(to_sql("bytes>1000000").unwrap(), "\"bytes\" > 1000000");
        assert_eq!(to_sql("bytes>=5").unwrap(), "\"bytes\" >= 5");
    }

    #[test]
    fn precedence_grouping_and_implicit_and() {
        assert_eq!(
            to_sql("dstport:22 OR dstport:3389 action:reject").unwrap(),
            "(\"dstport\" = 22 OR (\"dstport\" = 3389 AND \"action\" = 'REJECT'))"
        );
        assert_eq!(
            to_sql("(dstport:22 OR dstport:3389) interface-id:abc*").unwrap(),
            "((\"dstport\" = 22 OR \"dstport\" = 3389) AND \"interface_id\" LIKE 'abc%')"
        );
        assert_eq!(to_sql("rule-id:it's").unwrap(), "\"rule_id\" = 'it''s'");
    }

    /// The hardening findings: searches that overflowed the server's stack
    /// or made SQL parsing backtrack for minutes are refused at once.
    #[test]
    fn searches_over_the_limits_are_refused_naming_them() {
        let err = |s: &str| to_sql(s).unwrap_err().to_string();
        let parens = format!("{}dstport:22{}", "(".repeat(5000), ")".repeat(5000));
        assert!(err(&parens).contains("at most 4096"), "{}", err(&parens));
        let parens = format!("{}dstport:22{}", "(".repeat(17), ")".repeat(17));
        assert!(err(&parens).contains("nests parentheses 17 deep"));
        let nots = format!("{}dstport:22", "NOT ".repeat(40));
        assert!(err(&nots).contains("40 NOTs"), "{}", err(&nots));
        let ors = vec!["dstport:22"; 101].join(" OR ");
        assert!(err(&ors).contains("101 terms"));
        // At the limits, accepted.
        let ok = format!(
            "{}{}dstport:22{}",
            "NOT ".repeat(16),
            "(".repeat(16),
            ")".repeat(16)
        );
        to_sql(&ok).unwrap();
        to_sql(&vec!["dstport:22"; 100].join(" OR ")).unwrap();
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert!(
            to_sql("colour:red")
                .unwrap_err()
                .to_string()
                .contains("unknown field `colour`")
        );
        assert!(
            to_sql("dstport:ssh")
                .unwrap_err()
                .to_string()
                .contains("takes a whole number")
        );
        assert!(
            to_sql("action:REJECT AND")
                .unwrap_err()
                .to_string()
                .contains("ends where a term")
        );
        assert!(
            to_sql("(dstport:22")
                .unwrap_err()
                .to_string()
                .contains("missing `)`")
        );
        assert!(
            to_sql("srcaddr>5")
                .unwrap_err()
                .to_string()
                .contains("is text")
        );
        assert!(
            to_sql("dstport:")
                .unwrap_err()
                .to_string()
                .contains("no value")
        );
    }
}
