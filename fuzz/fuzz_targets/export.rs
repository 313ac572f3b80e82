#![no_main]
//! Fuzz target `export`: see `vpcflow_fuzzing::export`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcflow_fuzzing::export(data));
