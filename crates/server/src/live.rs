//! Live capture under the control plane: every project's flow logs and
//! model, rebuilt whenever the database was written, as the agent's
//! inventory source.
//!
//! Guarantees: a project whose model does not check is left out (and named
//! on every reload) while the others' capture goes on; writes made through
//! other `serve` processes sharing the database are followed too.

use std::sync::Arc;
use std::time::Duration;

use vpcflow_control::db::ControlDb;
use vpcflow_core::Inventory;
use vpcflow_runtime::{InventorySource, SourceError};

/// How often the database's change counter is read.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// The control plane's flow logs, as the agent's inventory.
pub struct DatabaseInventory {
    db: Arc<ControlDb>,
    runtime: tokio::runtime::Handle,
    seen: u64,
}

impl DatabaseInventory {
    /// Reads `db` through `runtime` (the agent's thread is not async).
    pub fn new(db: Arc<ControlDb>, runtime: tokio::runtime::Handle) -> DatabaseInventory {
        DatabaseInventory {
            db,
            runtime,
            seen: 0,
        }
    }
}

impl InventorySource for DatabaseInventory {
    fn describe(&self) -> String {
        "the control plane's flow logs".to_string()
    }
    fn load(&mut self) -> Result<Inventory, SourceError> {
        self.seen = self.db.generation();
        let live = self.runtime.block_on(self.db.live_inventory())?;
        // Said on every reload while it lasts: the project's owner must
        // fix it, and the others' capture goes on meanwhile.
        for (project, why) in &live.skipped {
            eprintln!(
                "vpcflow: warning: live capture leaves out project {project} until its model is fixed: {why}"
            );
        }
        Ok(live.inventory.clone())
    }
    fn changed(&mut self) -> bool {
        self.db.generation() != self.seen
    }
}

/// Reads the database's change counter every [`FOLLOW_EVERY`], so the live
/// capture follows writes made through other `serve` processes sharing
/// the database too (its own are counted as they commit). A database that
/// cannot be read is said once per outage; the capture keeps its
/// inventory meanwhile.
pub async fn follow_database(db: Arc<ControlDb>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        match db.refresh_generation().await {
            Ok(_) if failing => {
                failing = false;
                eprintln!("vpcflow: control-plane database readable again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                eprintln!("vpcflow: warning: cannot follow the control-plane database: {e}");
            }
            Err(_) => {}
        }
    }
}
