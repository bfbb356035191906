//! libFuzzer entry for the `http_request` check; the check itself lives in
//! `fuzz/checks/http_request.rs`, where `cargo test --test fuzz_replay` (main
//! crate) also runs it over the saved corpus and regressions.
#![no_main]

#[path = "../checks/http_request.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
