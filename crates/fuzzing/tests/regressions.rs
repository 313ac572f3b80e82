//! Every input a fuzzer kept (`fuzz/regressions/TARGET/`: crashes, each
//! named after what it found) and every seed (`fuzz/seeds/TARGET/`) runs
//! through its target's function without a panic.

use std::path::PathBuf;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
}

#[test]
fn every_target_has_seeds_and_runs_them_and_every_kept_crash() {
    for (target, run) in vpcflow_fuzzing::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no seed");
        for path in seeds.iter().chain(&inputs("regressions", target)) {
            let data = std::fs::read(path).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "{target}: {} panicked", path.display());
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (target, _) in vpcflow_fuzzing::TARGETS {
        let file = dir.join(format!("{target}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("vpcflow_fuzzing::{target}(")),
            "{} does not call vpcflow_fuzzing::{target}",
            file.display()
        );
    }
}
