//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `../shared/data` (from the workspace root).
pub fn shared_data() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(p.is_dir(), "shared test data missing at {}", p.display());
    p
}

/// The workspace's test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The `vpcflow` binary under test.
pub fn vpcflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vpcflow"))
}
