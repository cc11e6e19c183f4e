//! libFuzzer on `fuzz::peer_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::peer_message(data));
