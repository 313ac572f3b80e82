#![no_main]
//! Fuzz target `sql`: see `vpcflow_fuzzing::sql`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcflow_fuzzing::sql(data));
