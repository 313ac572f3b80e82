//! The store's catalog: which log groups and topics its directories hold,
//! by id, with their names and retention, so a query can name a group by
//! its name and retention runs without the inventory at hand.
//!
//! Kept in `_catalog.json` at the store's root, replaced atomically (temp
//! name, fsync, rename, directory fsync). Writers merge what they know into
//! it; an entry is never removed (records of a deleted group stay queryable
//! until they expire).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// File name of the catalog under the store's root: `_` first, so the
/// Hive-style readers that scan the store's directory (pyarrow datasets,
/// Spark) skip it as metadata.
pub const CATALOG_FILE: &str = "_catalog.json";

/// The catalog's name in earlier versions' stores.
const LEGACY_CATALOG_FILE: &str = "catalog.json";

/// Renames an earlier version's catalog to [`CATALOG_FILE`].
pub(crate) fn migrate_legacy_name(root: &Path) -> Result<(), StoreError> {
    let (legacy, path) = (root.join(LEGACY_CATALOG_FILE), root.join(CATALOG_FILE));
    if legacy.exists() && !path.exists() {
        fs::rename(&legacy, &path).map_err(|e| StoreError::io(&legacy, e))?;
        crate::writer::fsync_dir(root)?;
    }
    Ok(())
}

/// A log topic as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTopic {
    /// Id (the `log_topic=` directory).
    pub id: String,
    /// Name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A log group as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogGroup {
    /// Id (the `log_group=` directory).
    pub id: String,
    /// Name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Retention in days.
    pub ttl_in_days: u32,
    /// Its topics.
    #[serde(default)]
    pub log_topics: Vec<CatalogTopic>,
}

/// Everything the catalog holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Log groups, in the order first seen.
    #[serde(default)]
    pub log_groups: Vec<CatalogGroup>,
}

impl Catalog {
    /// Reads the catalog of the store at `root` (empty if it has none).
    /// A store no writer has opened since an upgrade still has its catalog
    /// under the earlier name; that is read then.
    pub fn load(root: &Path) -> Result<Catalog, StoreError> {
        let mut path = root.join(CATALOG_FILE);
        if !path.exists() && root.join(LEGACY_CATALOG_FILE).exists() {
            path = root.join(LEGACY_CATALOG_FILE);
        }
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Encode {
                path: path.display().to_string(),
                message: format!("not a store catalog: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// The retention of the log group with id `group`, if the catalog
    /// knows it.
    pub fn ttl_in_days(&self, group: &str) -> Option<u32> {
        self.log_groups
            .iter()
            .find(|g| g.id == group)
            .map(|g| g.ttl_in_days)
    }

    /// Adds or updates `groups` (names, retention, new topics); reports
    /// whether anything changed.
    pub fn merge(&mut self, groups: &[CatalogGroup]) -> bool {
        let before = self.clone();
        for g in groups {
            match self.log_groups.iter_mut().find(|x| x.id == g.id) {
                Some(have) => {
                    have.name.clone_from(&g.name);
                    have.ttl_in_days = g.ttl_in_days;
                    for t in &g.log_topics {
                        match have.log_topics.iter_mut().find(|x| x.id == t.id) {
                            Some(ht) => ht.name.clone_from(&t.name),
                            None => have.log_topics.push(t.clone()),
                        }
                    }
                }
                None => self.log_groups.push(g.clone()),
            }
        }
        *self != before
    }

    /// Writes the catalog durably under `root`.
    pub fn save(&self, root: &Path) -> Result<(), StoreError> {
        let path = root.join(CATALOG_FILE);
        let tmp = root.join(format!(".{CATALOG_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Encode {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        crate::writer::fsync_dir(root)
    }

    /// The group whose id or name is `key`. A name shared by several
    /// groups is an error that lists their ids.
    pub fn group(&self, key: &str) -> Result<Option<&CatalogGroup>, String> {
        if let Some(g) = self.log_groups.iter().find(|g| g.id == key) {
            return Ok(Some(g));
        }
        let named: Vec<&CatalogGroup> = self
            .log_groups
            .iter()
            .filter(|g| g.name.as_deref() == Some(key))
            .collect();
        match named.as_slice() {
            [] => Ok(None),
            [g] => Ok(Some(g)),
            many => Err(format!(
                "log group name '{key}' is ambiguous; use one of the ids {}",
                many.iter()
                    .map(|g| g.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Ids of the topics (of `group`, or of any group) whose id or name is `key`.
    pub fn topic_ids(&self, group: Option<&CatalogGroup>, key: &str) -> Vec<String> {
        let groups: Vec<&CatalogGroup> = match group {
            Some(g) => vec![g],
            None => self.log_groups.iter().collect(),
        };
        let mut ids: Vec<String> = groups
            .iter()
            .flat_map(|g| g.log_topics.iter())
            .filter(|t| t.id == key || t.name.as_deref() == Some(key))
            .map(|t| t.id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, name: &str, topics: &[(&str, &str)]) -> CatalogGroup {
        CatalogGroup {
            id: id.into(),
            name: Some(name.into()),
            ttl_in_days: 7,
            log_topics: topics
                .iter()
                .map(|(i, n)| CatalogTopic {
                    id: (*i).into(),
                    name: Some((*n).into()),
                })
                .collect(),
        }
    }

    #[test]
    fn merge_save_load_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::load(dir.path()).unwrap();
        assert!(c.log_groups.is_empty());
        assert!(c.merge(&[group("g1", "prod", &[("t1", "web")])]));
        assert!(!c.merge(&[group("g1", "prod", &[("t1", "web")])]));
        assert!(c.merge(&[group("g1", "prod", &[("t2", "db")])]));
        c.save(dir.path()).unwrap();
        let back = Catalog::load(dir.path()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.log_groups[0].log_topics.len(), 2);
        assert_eq!(back.group("prod").unwrap().unwrap().id, "g1");
        assert_eq!(back.group("g1").unwrap().unwrap().id, "g1");
        assert!(back.group("nope").unwrap().is_none());
        assert_eq!(back.topic_ids(None, "db"), vec!["t2".to_string()]);
    }

    #[test]
    fn ambiguous_names_are_errors_naming_the_ids() {
        let mut c = Catalog::default();
        c.merge(&[group("g1", "same", &[]), group("g2", "same", &[])]);
        let e = c.group("same").unwrap_err();
        assert!(e.contains("g1") && e.contains("g2"), "{e}");
    }

    #[test]
    fn a_corrupt_catalog_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CATALOG_FILE), b"{nope").unwrap();
        let e = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("catalog.json") && e.contains("not a store catalog"),
            "{e}"
        );
    }
}
