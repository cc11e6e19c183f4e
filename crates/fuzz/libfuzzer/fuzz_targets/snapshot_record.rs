//! libFuzzer on `fuzz::snapshot_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::snapshot_record(data));
