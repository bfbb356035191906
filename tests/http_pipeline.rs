//! Keep-alive, pipelining, 100-continue, split delivery, deferred responses
//! and timeouts, over raw sockets.

#[path = "util/http.rs"]
mod util;

use std::time::{Duration, Instant};

use evnet::http::{HttpBuilder, Limits, OwnedResponse, Router};
use proptest::prelude::*;
use util::*;

#[test]
fn sixteen_pipelined_requests_get_sixteen_responses_in_order() {
    let router = Router::new().prefix("GET", "/n/", |req, resp| {
        resp.text(req.path());
    });
    let s = start_with(Limits::default(), router, None);
    let mut bytes = Vec::new();
    for i in 0..16 {
        bytes.extend_from_slice(format!("GET /n/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let mut c = Client::connect(addr(&s));
    c.send(&bytes);
    for i in 0..16 {
        let r = c.read_response().expect("response");
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert_eq!(r.body_str(), format!("/n/{i}"));
        assert_eq!(r.header("connection"), None);
    }
    assert!(
        c.still_open(Duration::from_millis(100)),
        "keep-alive connection stays open"
    );
}

#[test]
fn request_pipelined_after_connection_close_is_not_answered() {
    let s = start();
    let mut c = Client::connect(addr(&s));
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.body_str(), "Hello, World!");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        c.expect_closed().is_empty(),
        "the second request must not be answered"
    );
}

#[test]
fn http10_closes_unless_keep_alive_requested() {
    let s = start();
    let mut c = Client::connect(addr(&s));
    c.send(b"GET /plaintext HTTP/1.0\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.expect_closed().is_empty());

    let mut c = Client::connect(addr(&s));
    c.send(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(
        c.read_response().unwrap().body_str(),
        "{\"message\":\"Hello, World!\"}"
    );
}

#[test]
fn head_response_has_get_headers_and_no_body() {
    let s = start();
    let mut c = Client::connect(addr(&s));
    c.send(
        b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let h = c.read_response_for(true).unwrap();
    assert_eq!(h.header("content-length"), Some("13"));
    let g = c.read_response().unwrap();
    assert_eq!(g.body_str(), "Hello, World!");
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let s = start();
    let mut c = Client::connect(addr(&s));
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.status_line, "HTTP/1.1 100 Continue");
    c.send(b"hello");
    let r = c.read_response().unwrap();
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body_str(), "hello");
}

#[test]
fn expect_100_continue_is_skipped_when_the_body_is_already_here() {
    let s = start();
    let r = exchange(
        addr(&s),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status_line, "HTTP/1.1 200 OK");
}

const CHUNKED: &[u8] = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/x-test\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";

#[test]
fn byte_at_a_time_chunked_body_matches_one_write() {
    let s = start();
    let whole = exchange(addr(&s), CHUNKED);
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].body_str(), "hello, world");
    assert_eq!(whole[0].header("content-type"), Some("text/x-test"));

    let mut c = Client::connect(addr(&s));
    for b in CHUNKED {
        c.send(std::slice::from_ref(b));
    }
    c.shutdown_write();
    let r = c.read_response().unwrap();
    assert_eq!(strip_date(&r), strip_date(&whole[0]));
    assert!(c.read_response().is_none());
}

fn strip_date(r: &Resp) -> Resp {
    let mut r = r.clone();
    r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("date"));
    r
}

fn pipelined_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    s.extend_from_slice(b"\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    s.extend_from_slice(CHUNKED);
    s.extend_from_slice(b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n");
    s.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    s
}

/// Send the pieces, one write each, and collect every response.
fn responses_for(addr: std::net::SocketAddr, pieces: &[&[u8]]) -> Vec<Resp> {
    let mut c = Client::connect(addr);
    for p in pieces {
        c.send(p);
    }
    c.shutdown_write();
    let mut out = Vec::new();
    // The fourth request is HEAD.
    while let Some(r) = c.read_response_for(out.len() == 3) {
        out.push(strip_date(&r));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn any_split_of_a_pipelined_stream_gives_identical_responses(
        cuts in prop::collection::btree_set(1usize..300, 0..12),
    ) {
        let s = start();
        let stream = pipelined_stream();
        let whole = responses_for(addr(&s), &[&stream]);
        prop_assert_eq!(whole.len(), 5);
        let mut pieces = Vec::new();
        let mut pos = 0;
        for c in cuts.into_iter().filter(|&c| c < stream.len()) {
            pieces.push(&stream[pos..c]);
            pos = c;
        }
        pieces.push(&stream[pos..]);
        let split = responses_for(addr(&s), &pieces);
        prop_assert_eq!(split, whole);
    }
}

#[test]
fn header_timeout_answers_408_and_closes() {
    let limits = Limits {
        header_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let s = start_with(limits, Router::new(), None);
    let mut c = Client::connect(addr(&s));
    let t0 = Instant::now();
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n");
    let r = c.read_response().expect("408");
    let took = t0.elapsed();
    assert_eq!(r.status_line, "HTTP/1.1 408 Request Timeout");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.expect_closed().is_empty());
    assert!(
        took >= Duration::from_millis(190),
        "fired too early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "fired too late: {took:?}");
}

#[test]
fn slowloris_trickle_is_cut_off_by_the_header_deadline() {
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = start_with(limits, Router::new(), None);
    let mut c = Client::connect(addr(&s));
    let t0 = Instant::now();
    // Keep sending a byte every 50 ms: progress must not extend the deadline.
    let trickle = [b'a'; 200];
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    c.stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut first = [0u8; 12];
    let mut answered = false;
    for b in trickle {
        if std::io::Write::write_all(&mut c.stream, &[b]).is_err() {
            break;
        }
        match std::io::Read::read(&mut c.stream, &mut first) {
            Ok(n) => {
                assert_eq!(&first[..n], &b"HTTP/1.1 408"[..n]);
                answered = true;
                break;
            }
            Err(e) => assert!(matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
        }
    }
    let took = t0.elapsed();
    assert!(answered, "the server must answer 408 to a trickling head");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn idle_keep_alive_connection_closes_quietly() {
    let limits = Limits {
        keepalive_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let s = start_with(limits, Router::new(), None);
    let mut c = Client::connect(addr(&s));
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status(), 200);
    let rest = c.expect_closed();
    assert!(
        rest.is_empty(),
        "idle close sends nothing: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn body_timeout_closes_a_stalled_body() {
    let limits = Limits {
        body_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let s = start_with(limits, Router::new(), None);
    let mut c = Client::connect(addr(&s));
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.read_response().expect("408");
    assert_eq!(r.status(), 408);
    assert!(c.expect_closed().is_empty());
}

fn deferred_router() -> Router {
    Router::new()
        .get("/later", |req, resp| {
            let d = resp.defer();
            let q = req.query().unwrap_or("").to_string();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let _ = d.send(
                    OwnedResponse::new(200, format!("later {q}"))
                        .header("Content-Type", "text/plain"),
                );
            });
        })
        .get("/drop", |_req, resp| {
            drop(resp.defer());
        })
}

#[test]
fn deferred_responses_keep_pipeline_order() {
    let s = start_with(Limits::default(), deferred_router(), None);
    let mut c = Client::connect(addr(&s));
    c.send(
        b"GET /later?1 HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /later?2 HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let bodies: Vec<String> = (0..4)
        .map(|_| c.read_response().unwrap().body_str().to_string())
        .collect();
    assert_eq!(
        bodies,
        [
            "later 1",
            "Hello, World!",
            "later 2",
            "{\"message\":\"Hello, World!\"}"
        ]
    );
    // The connection is still usable.
    c.send(b"GET /later?3 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().unwrap().body_str(), "later 3");
}

#[test]
fn deferred_response_goes_out_before_a_half_close_is_honoured() {
    let s = start_with(Limits::default(), deferred_router(), None);
    let r = exchange(
        addr(&s),
        b"GET /later?x HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let bodies: Vec<&str> = r.iter().map(Resp::body_str).collect();
    assert_eq!(bodies, ["later x", "Hello, World!"]);
}

#[test]
fn dropped_deferred_response_sends_500() {
    let s = start_with(Limits::default(), deferred_router(), None);
    let mut c = Client::connect(addr(&s));
    c.send(b"GET /drop HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status(), 500);
    assert_eq!(c.read_response().unwrap().body_str(), "Hello, World!");
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let s = start();
    let r = exchange(
        addr(&s),
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nDELETE /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r[0].status_line, "HTTP/1.1 404 Not Found");
    assert_eq!(r[1].status_line, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(r[1].header("allow"), Some("GET"));
}

#[test]
fn builtin_pages_and_stats_count_requests() {
    let s = start();
    let r = exchange(
        addr(&s),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.len(), 4);
    assert!(r[0]
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(r[0].body_str().contains("evnet"));
    assert!(r[0].body_str().contains("poller=epoll") || std::env::var("EVNET_TEST_POLLER").is_ok());
    assert_eq!(
        r[1].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(r[1].body_str(), "Hello, World!");
    assert_eq!(r[2].header("content-type"), Some("application/json"));
    assert_eq!(r[2].body_str(), "{\"message\":\"Hello, World!\"}");
    let stats = r[3].body_str();
    assert!(stats.contains("\"requests\":4"), "{stats}");
    assert!(stats.contains("\"connections_open\":1"), "{stats}");
    assert!(stats.contains("\"loops\":[{\"id\":"), "{stats}");
    assert!(r[1].header("date").unwrap().ends_with(" GMT"));
}

#[test]
fn library_builder_serves_only_the_routes_it_is_given() {
    // The demo routes belong to the CLI (and to this suite's helper).
    let router = Router::new().get("/mine", |_, resp| {
        resp.text("mine");
    });
    let s = HttpBuilder::new(server_builder())
        .router(router)
        .start()
        .unwrap();
    let r = exchange(
        addr(&s),
        b"GET /mine HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].body_str(), "mine");
    for other in &r[1..] {
        assert_eq!(other.status_line, "HTTP/1.1 404 Not Found");
    }
}

#[test]
fn routes_match_known_and_extension_methods_over_a_large_table() {
    // More paths than the router scans linearly, so the map index is used.
    let mut router = Router::new()
        .get("/a", |_, resp| {
            resp.text("get a");
        })
        .route("PURGE", "/a", |_, resp| {
            resp.text("purge a");
        })
        .route("*", "/any", |req, resp| {
            resp.text(req.method());
        });
    for i in 0..40 {
        router = router.get(&format!("/p{i}"), move |_, resp| {
            resp.text(&format!("p{i}"));
        });
    }
    let s = start_with(Limits::default(), router, None);
    let mut req = Vec::new();
    for line in [
        "GET /a",
        "PURGE /a",
        "POST /a",
        "BREW /any",
        "GET /p0",
        "GET /p39",
        "GET /p40",
    ] {
        req.extend_from_slice(format!("{line} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let r = exchange(addr(&s), &req);
    assert_eq!(r.len(), 7);
    assert_eq!(r[0].body_str(), "get a");
    assert_eq!(r[1].body_str(), "purge a");
    assert_eq!(r[2].status_line, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(r[2].header("allow"), Some("GET, PURGE"));
    assert_eq!(r[3].body_str(), "BREW");
    assert_eq!(r[4].body_str(), "p0");
    assert_eq!(r[5].body_str(), "p39");
    assert_eq!(r[6].status_line, "HTTP/1.1 404 Not Found");
}
