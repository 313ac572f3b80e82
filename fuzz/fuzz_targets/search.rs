#![no_main]
//! Fuzz target `search`: see `vpcflow_fuzzing::search`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcflow_fuzzing::search(data));
