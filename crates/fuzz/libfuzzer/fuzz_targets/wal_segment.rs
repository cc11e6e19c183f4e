//! libFuzzer on `fuzz::wal_segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::wal_segment(data));
