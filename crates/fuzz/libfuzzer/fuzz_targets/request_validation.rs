//! libFuzzer on `fuzz::request_validation`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::request_validation(data));
