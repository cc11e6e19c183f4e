//! libFuzzer on `fuzz::txn_eval`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::txn_eval(data));
