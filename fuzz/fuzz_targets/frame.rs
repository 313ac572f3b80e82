#![no_main]
//! Fuzz target `frame`: see `vpcflow_fuzzing::frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vpcflow_fuzzing::frame(data));
