#![no_main]
//! Fuzz target `capture`: see `vpcflow_fuzzing::capture`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcflow_fuzzing::capture(data));
