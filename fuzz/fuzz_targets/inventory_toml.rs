#![no_main]
//! Fuzz target `inventory_toml`: see `vpcflow_fuzzing::inventory_toml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcflow_fuzzing::inventory_toml(data));
