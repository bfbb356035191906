//! libFuzzer entry for the `resp_command` check; the check itself lives in
//! `fuzz/checks/resp_command.rs`, where `cargo test --test fuzz_replay` (main
//! crate) also runs it over the saved corpus and regressions.
#![no_main]

#[path = "../checks/resp_command.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
