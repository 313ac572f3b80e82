#![no_main]
//! Fuzz target `inventory_json`: see `vpcflow_fuzzing::inventory_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcflow_fuzzing::inventory_json(data));
