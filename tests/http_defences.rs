//! One raw-socket test per request-parsing defence (RFC 9112 / RFC 9110):
//! the exact status line, `Connection: close`, and the server closing the
//! connection without answering anything sent after the bad request.

#[path = "util/http.rs"]
mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use evnet::http::{Limits, Router};
use util::*;

/// A request for `/json` sent right behind each bad one: it must never be
/// answered (the framing can no longer be trusted).
const SMUGGLED: &[u8] = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n";

fn small_limits() -> Limits {
    Limits {
        max_request_line: 64,
        max_headers: 4,
        max_head_bytes: 256,
        max_body: 16,
        ..Limits::default()
    }
}

/// Send `bad` followed by a valid request in one write; expect `status`
/// and a close.
fn rejects(bad: &[u8], status_line: &str) {
    let s = start_with(small_limits(), Router::new(), None);
    let mut bytes = bad.to_vec();
    bytes.extend_from_slice(SMUGGLED);
    expect_status_then_close(addr(&s), &bytes, status_line);
}

macro_rules! defence {
    ($name:ident, $bytes:expr, $status:expr) => {
        #[test]
        fn $name() {
            rejects($bytes, $status);
        }
    };
}

const BAD: &str = "HTTP/1.1 400 Bad Request";

defence!(
    bare_lf_line_ending_is_400,
    b"GET / HTTP/1.1\nHost: x\n\n",
    BAD
);
defence!(
    bare_cr_in_head_is_400,
    b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    BAD
);
defence!(
    obsolete_line_folding_is_400,
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n",
    BAD
);
defence!(
    malformed_request_line_is_400,
    b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    BAD
);
defence!(
    request_line_without_version_is_400,
    b"GET /\r\nHost: x\r\n\r\n",
    BAD
);
defence!(overlong_method_is_400, &[b'G'; 100], BAD);
defence!(
    overlong_target_is_414,
    format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100)).as_bytes(),
    "HTTP/1.1 414 URI Too Long"
);
defence!(
    too_many_header_fields_is_431,
    b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
    "HTTP/1.1 431 Request Header Fields Too Large"
);
defence!(
    oversized_head_is_431,
    format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(300)
    )
    .as_bytes(),
    "HTTP/1.1 431 Request Header Fields Too Large"
);
defence!(
    http_2_0_version_is_505,
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "HTTP/1.1 505 HTTP Version Not Supported"
);
defence!(
    space_before_colon_is_400,
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",
    BAD
);
defence!(
    nul_in_field_value_is_400,
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
    BAD
);
defence!(
    missing_host_in_http11_is_400,
    b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
    BAD
);
defence!(
    duplicate_host_is_400,
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    BAD
);
defence!(
    invalid_host_is_400,
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    BAD
);
defence!(content_length_with_transfer_encoding_is_400, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BAD);
defence!(
    non_numeric_content_length_is_400,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    BAD
);
defence!(
    conflicting_content_lengths_are_400,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    BAD
);
defence!(
    transfer_encoding_in_http10_is_400,
    b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    BAD
);
defence!(
    chunked_not_final_coding_is_400,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    BAD
);
defence!(chunked_twice_is_400, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", BAD);
defence!(
    unknown_transfer_coding_is_501,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "HTTP/1.1 501 Not Implemented"
);
defence!(
    unsupported_expectation_is_417,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na",
    "HTTP/1.1 417 Expectation Failed"
);
defence!(
    content_length_over_max_body_is_413,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n",
    "HTTP/1.1 413 Content Too Large"
);
defence!(chunked_body_over_max_body_is_413, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n01234567890123456\r\n0\r\n\r\n", "HTTP/1.1 413 Content Too Large");
defence!(
    invalid_chunk_size_is_400,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    BAD
);
defence!(
    chunk_without_crlf_after_data_is_400,
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    BAD
);

#[test]
fn smuggled_request_after_cl_te_conflict_is_never_answered() {
    let s = start();
    // The classic CL.TE smuggle: a front end honouring Content-Length would
    // forward the `GET /json` as body; we must refuse the whole message.
    let bytes = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut c = Client::connect(addr(&s));
    c.send(bytes);
    let r = c.read_response().expect("an error response");
    assert_eq!(r.status_line, BAD);
    let rest = c.expect_closed();
    assert!(
        rest.is_empty(),
        "the smuggled request was answered: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn head_request_error_has_no_body() {
    let s = start_with(small_limits(), Router::new(), None);
    let mut c = Client::connect(addr(&s));
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n");
    let r = c.read_response_for(true).expect("response");
    assert_eq!(r.status_line, "HTTP/1.1 413 Content Too Large");
    assert!(c.expect_closed().is_empty());
}

#[test]
fn eof_mid_body_closes_without_running_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let router = Router::new().post("/count", move |_req, resp| {
        c2.fetch_add(1, Ordering::SeqCst);
        resp.text("ran");
    });
    let s = start_with(Limits::default(), router, None);
    for req in [
        &b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"[..],
        &b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"[..],
        &b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Le"[..],
    ] {
        let mut c = Client::connect(addr(&s));
        c.send(req);
        c.shutdown_write();
        let rest = c.expect_closed();
        assert!(
            rest.is_empty(),
            "no response to a cut-short request: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    // A complete request on a fresh connection proves the route works.
    let r = exchange(
        addr(&s),
        b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].body_str(), "ran");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn percent_encoded_nul_in_static_path_is_400_and_keeps_connection() {
    let dir = std::env::temp_dir().join(format!("evnet-def-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = start_with(Limits::default(), Router::new(), Some(&dir));
    let mut c = Client::connect(addr(&s));
    c.send(b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status(), 400);
    assert_eq!(c.read_response().unwrap().body_str(), "Hello, World!");
    let _ = std::fs::remove_dir_all(&dir);
}
