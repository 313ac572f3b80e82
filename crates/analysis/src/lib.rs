//! Analysis of the records in a log store, for the seed's three uses:
//! tuning security groups and ACLs ([`rules`]), finding attacks
//! ([`attacks`]) and seeing the direction of traffic ([`traffic`]).
//!
//! Attacks and rule use are read from the store's window summaries
//! ([`vpcflow_store::summary`]: what each window holds for them, written
//! beside its records) where those answer the question; otherwise, and
//! for traffic and suggestions, the analysis is SQL pushed down to the
//! store (grouping and counting run where the records are; only the
//! answer, a few rows per finding, comes back). Both give the same
//! findings: [`Finding`]s, one shape for every kind, written as JSON lines
//! (kebab-case keys) or a terminal table.
//!
//! Guarantees: an analysis reads the store and never writes it; the same
//! records give the same findings in the same order.

pub mod attacks;
mod finding;
pub mod rules;
pub mod suggest;
pub mod traffic;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use finding::{Finding, write_json, write_table};
use vpcflow_store::summary::{SummaryView, TopicWindow};
use vpcflow_store::{Query, QueryLimits, StoreError, StoreRef, TimeRange};

/// What went wrong in an analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The store refused or failed the query.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The inventory file, or the suggestion made of it, is not valid.
    #[error("inventory: {0}")]
    Inventory(String),
    /// A threshold name or value that is not one.
    #[error("threshold {0}")]
    Threshold(String),
    /// The store answered with something the analysis did not ask for.
    #[error("unexpected answer from the store: {0}")]
    Answer(String),
}

/// The records an analysis reads: a store, narrowed like `vpcflow query`.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    /// The store (a directory, or ClickHouse).
    pub store: StoreRef<'a>,
    /// Only this log group (id or name).
    pub group: Option<String>,
    /// Only this log topic (id or name).
    pub topic: Option<String>,
    /// Only windows overlapping this range.
    pub time: TimeRange,
    /// For a tenant: the queries see only the one log topic (`group` and
    /// `topic` must be ids).
    pub confined: bool,
    /// What each query may take.
    pub limits: QueryLimits,
    /// Set by the caller when the answer is no longer wanted.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Read the records even where the store's window summaries would
    /// answer (slower; the summaries' check).
    pub from_records: bool,
}

impl<'a> Records<'a> {
    /// Every record of the store at `store`, unconfined, with the default
    /// limits.
    pub fn of(store: impl Into<StoreRef<'a>>) -> Records<'a> {
        Records {
            store: store.into(),
            group: None,
            topic: None,
            time: TimeRange::default(),
            confined: false,
            limits: QueryLimits::default(),
            cancel: None,
            from_records: false,
        }
    }
}

/// `'text'` as an SQL literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One row of an answer, its columns as text (`None`: SQL null).
#[derive(Debug, Clone)]
struct Row(Vec<Option<String>>);

impl Row {
    fn text(&self, i: usize) -> Result<&str, AnalysisError> {
        self.0
            .get(i)
            .ok_or_else(|| AnalysisError::Answer(format!("no column {i}")))?
            .as_deref()
            .ok_or_else(|| AnalysisError::Answer(format!("column {i} is null")))
    }
    fn u64(&self, i: usize) -> Result<u64, AnalysisError> {
        let t = self.text(i)?;
        t.parse()
            .map_err(|_| AnalysisError::Answer(format!("column {i} is {t:?}, not a count")))
    }
    fn opt_text(&self, i: usize) -> Option<String> {
        self.0.get(i).cloned().flatten()
    }
}

impl Records<'_> {
    /// Folds `f` over the store's window summaries of these records; `None`
    /// when a records file in scope has none, or summaries are turned off.
    fn fold_summaries<W: SummaryView, T>(
        &self,
        init: impl Fn() -> T,
        f: impl FnMut(&mut T, TopicWindow<W>),
    ) -> Result<Option<T>, AnalysisError> {
        if self.from_records {
            return Ok(None);
        }
        let q = Query {
            group: self.group.clone(),
            topic: self.topic.clone(),
            time: self.time,
            confined: self.confined,
            ..Query::default()
        };
        Ok(q.fold_summaries_at(self.store, init, f)?)
    }

    /// SQL for the first `n` rows of each group of `grouped` (a `SELECT`
    /// over `records`) by `partition`, in `order`, as `columns`: a window
    /// function where the store's engine has them (DataFusion), `LIMIT n
    /// BY` where it does not (ClickHouse before 21).
    fn top_per_group(
        &self,
        grouped: &str,
        partition: &str,
        order: &str,
        n: u64,
        columns: &str,
    ) -> String {
        match self.store {
            StoreRef::ClickHouse(_) => format!(
                "SELECT {columns} FROM ({grouped} ORDER BY {partition}, {order} LIMIT {n} BY {partition})"
            ),
            StoreRef::Dir(_) => format!(
                "SELECT {columns} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {partition} \
                 ORDER BY {order}) AS rank FROM ({grouped})) WHERE rank <= {n}"
            ),
        }
    }

    fn sql(&self, sql: String) -> Result<Vec<Row>, AnalysisError> {
        let q = Query {
            group: self.group.clone(),
            topic: self.topic.clone(),
            time: self.time,
            sql: Some(sql),
            confined: self.confined,
            limits: self.limits,
            cancel: self.cancel.clone(),
            ..Query::default()
        };
        let result = q.run_at(self.store)?;
        Ok(result.text_rows()?.into_iter().map(Row).collect())
    }
}
