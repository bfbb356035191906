//! libFuzzer entry for the `kcp_input` check; the check itself lives in
//! `fuzz/checks/kcp_input.rs`, where `cargo test --test fuzz_replay` (main
//! crate) also runs it over the saved corpus and regressions.
#![no_main]

#[path = "../checks/kcp_input.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
