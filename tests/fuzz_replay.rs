//! Replays what fuzzing learned without a fuzzer: every saved input under
//! `fuzz/corpus/<target>/` (the minimised corpus) and `fuzz/regressions/<target>/`
//! (inputs that once crashed) goes through the same check the fuzz target
//! runs. The checks are the fuzz crate's own files, included here, so the two
//! cannot drift apart.

use std::any::Any;
use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/http_request.rs"]
mod http_request;

#[path = "../fuzz/checks/resp_command.rs"]
mod resp_command;

#[path = "../fuzz/checks/kcp_input.rs"]
mod kcp_input;

#[test]
fn http_request_corpus_and_regressions() {
    replay("http_request", http_request::check);
}

#[test]
fn kcp_input_corpus_and_regressions() {
    replay("kcp_input", kcp_input::check);
}

#[test]
fn resp_command_corpus_and_regressions() {
    replay("resp_command", resp_command::check);
}

/// Runs `check` on every file saved for `target`, catching each panic so that
/// one bad input does not hide the others, and fails naming every file that
/// panicked. A missing or empty corpus fails too: a replay of nothing would
/// pass forever once the corpus went astray.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no corpus for {target}: fuzz/corpus/{target}/ is missing or empty"
    );
    // Regressions are optional: a target that never crashed has none.
    let regressions = inputs(&fuzz.join("regressions").join(target));

    let mut failures = Vec::new();
    for file in corpus.iter().chain(&regressions) {
        let data = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        if let Err(payload) = panic::catch_unwind(|| check(&data)) {
            failures.push(format!("{}: {}", file.display(), message(&*payload)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} inputs failed the check:\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        failures.join("\n")
    );
}

/// The files directly under `dir`, sorted so failures list in a stable order;
/// none if `dir` does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read_dir {}: {e}", dir.display()),
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

/// The text a panic carries (`panic!` with a literal gives `&str`, with
/// arguments a `String`).
fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}
