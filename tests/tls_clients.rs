//! Real TLS clients against `evnet http --tls-self-signed`: curl (TLS 1.2
//! and 1.3, keep-alive, a static file), `openssl s_client` (versions,
//! ALPN, session resumption, refused renegotiation), `gnutls-cli` (a second
//! TLS stack), Python's `ssl`, headless Chromium, and `testssl.sh`. A
//! missing tool fails the test with a message (`.ci/run` installs them).

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use util::Child;

/// `bash -c script` under a time limit; panics if a tool is missing.
fn sh(secs: u32, script: &str) -> Output {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .args(["bash", "-c", script])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bash");
    assert_ne!(out.status.code(), Some(124), "timed out: {script}");
    let err = text(&out.stderr);
    assert!(
        !err.contains("command not found"),
        "a tool is missing (install it: this test needs it): {err}"
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("evnet-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `evnet http` over TLS with a self-signed certificate, serving `root`.
fn server(root: &Path, poller: &str) -> Child {
    Child::spawn(&[
        "http",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "0",
        "--poller",
        poller,
        "--tls-self-signed",
        "--root",
        root.to_str().unwrap(),
    ])
}

#[test]
fn the_banner_prints_the_fingerprint_and_an_https_address() {
    let dir = tmp_dir("banner");
    let s = server(&dir, "epoll");
    assert!(s.banner.contains("SHA-256 fingerprint "), "{}", s.banner);
    assert!(
        s.banner.contains(&format!("https://{}/", s.addr)),
        "{}",
        s.banner
    );
    // The fingerprint printed is the certificate's.
    let fp = s
        .banner
        .split("fingerprint ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = sh(
        20,
        &format!(
            "openssl s_client -connect {} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            s.addr
        ),
    );
    assert!(
        text(&out.stdout).contains(&fp),
        "{} vs {fp}",
        text(&out.stdout)
    );
}

#[test]
fn curl_keeps_the_connection_alive_over_tls_1_2_and_1_3() {
    let dir = tmp_dir("curl");
    let s = server(&dir, "epoll");
    for (flags, version) in [
        ("--tlsv1.2 --tls-max 1.2", "TLSv1.2"),
        ("--tlsv1.3", "TLSv1.3"),
    ] {
        let out = sh(
            20,
            &format!(
                "curl -sSk -v {flags} https://{a}/plaintext https://{a}/json",
                a = s.addr
            ),
        );
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{e}");
        assert_eq!(o, "Hello, World!{\"message\":\"Hello, World!\"}");
        assert!(
            e.contains(&format!("SSL connection using {version}")),
            "{e}"
        );
        assert!(e.contains("ALPN: server accepted http/1.1"), "{e}");
        assert!(e.contains("Re-using existing connection"), "{e}");
    }
}

/// A file body is read and encrypted in bounded chunks (no sendfile under
/// TLS), on epoll and on the proactor, with a range request too.
#[test]
fn curl_downloads_a_static_file_over_tls() {
    let dir = tmp_dir("static");
    let data = util::pattern(7, 3_000_000);
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    for poller in ["epoll", "proactor"] {
        let s = server(&dir, poller);
        let got = dir.join(format!("got-{poller}"));
        let out = sh(
            30,
            &format!("curl -sSk -o {} https://{}/big.bin", got.display(), s.addr),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            std::fs::read(&got).unwrap() == data,
            "{poller}: file differs"
        );
        let out = sh(
            30,
            &format!("curl -sSk -r 1000-1999 https://{}/big.bin", s.addr),
        );
        assert!(out.stdout == data[1000..2000], "{poller}: range differs");
    }
}

#[test]
fn openssl_negotiates_each_version_with_alpn_and_resumes_sessions() {
    let dir = tmp_dir("openssl");
    let s = server(&dir, "epoll");
    for v in ["-tls1_2", "-tls1_3"] {
        let sess = dir.join(format!("sess{v}"));
        // A request answered, then the server's close: time enough for a
        // TLS 1.3 ticket to arrive before s_client saves the session.
        let req = r"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let first = sh(
            20,
            &format!(
                "(printf '{req}'; sleep 1) | openssl s_client {v} -alpn http/1.1 -connect {} -sess_out {} 2>&1",
                s.addr,
                sess.display()
            ),
        );
        let o = text(&first.stdout);
        assert!(o.contains("New, TLSv1."), "{o}");
        assert!(o.contains("ALPN protocol: http/1.1"), "{o}");
        assert!(o.contains("Hello, World!"), "{o}");
        let want = if v == "-tls1_2" { "TLSv1.2" } else { "TLSv1.3" };
        assert!(o.contains(&format!("Protocol  : {want}")), "{o}");
        let second = sh(
            20,
            &format!(
                "(printf '{req}'; sleep 1) | openssl s_client {v} -connect {} -sess_in {} 2>&1",
                s.addr,
                sess.display()
            ),
        );
        let o = text(&second.stdout);
        assert!(o.contains("Reused, TLSv1."), "{v}: not resumed: {o}");
        assert!(o.contains("Hello, World!"), "{o}");
    }
}

#[test]
fn renegotiation_is_refused_and_the_server_goes_on() {
    let dir = tmp_dir("reneg");
    let s = server(&dir, "epoll");
    // s_client reads an `R` line as "renegotiate" (interactive mode).
    let out = sh(
        20,
        &format!(
            "(sleep 0.5; printf 'R\\n'; sleep 1) | openssl s_client -tls1_2 -connect {} 2>&1",
            s.addr
        ),
    );
    let o = text(&out.stdout);
    assert!(o.contains("RENEGOTIATING"), "{o}");
    assert!(o.contains("no renegotiation"), "{o}");
    let out = sh(20, &format!("curl -sSk https://{}/plaintext", s.addr));
    assert_eq!(text(&out.stdout), "Hello, World!");
}

#[test]
fn gnutls_cli_gets_a_page() {
    let dir = tmp_dir("gnutls");
    let s = server(&dir, "epoll");
    let out = sh(
        20,
        &format!(
            "printf 'GET /json HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | \
             gnutls-cli --insecure --port {} 127.0.0.1 2>&1",
            s.addr.port()
        ),
    );
    let o = text(&out.stdout);
    assert!(o.contains("HTTP/1.1 200 OK"), "{o}");
    assert!(o.contains("{\"message\":\"Hello, World!\"}"), "{o}");
}

#[test]
fn python_ssl_gets_a_page() {
    let dir = tmp_dir("python");
    let s = server(&dir, "epoll");
    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context()\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         ctx.set_alpn_protocols(['http/1.1'])\n\
         with socket.create_connection(('127.0.0.1', {port}), timeout=10) as raw:\n\
         \x20   with ctx.wrap_socket(raw, server_hostname='localhost') as t:\n\
         \x20       t.sendall(b'GET /plaintext HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n\
         \x20       data = b''\n\
         \x20       while True:\n\
         \x20           chunk = t.recv(65536)\n\
         \x20           if not chunk: break\n\
         \x20           data += chunk\n\
         \x20       print(t.version(), t.selected_alpn_protocol())\n\
         \x20       print(data.decode())\n",
        port = s.addr.port()
    );
    let path = dir.join("client.py");
    std::fs::write(&path, script).unwrap();
    let out = sh(20, &format!("python3 {}", path.display()));
    let o = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(o.starts_with("TLSv1.3 http/1.1\n"), "{o}");
    assert!(
        o.contains("HTTP/1.1 200 OK") && o.ends_with("Hello, World!\n"),
        "{o}"
    );
}

#[test]
fn headless_chromium_loads_a_page_and_an_image_over_https() {
    let dir = tmp_dir("chromium");
    std::fs::write(
        dir.join("page.html"),
        "<!doctype html><html><head><title>waiting</title></head><body>\
         <img id=\"i\" src=\"pic.svg\" width=\"300\" height=\"200\" \
         onload=\"document.title='loaded '+this.naturalWidth+' '+location.protocol\">\
         </body></html>",
    )
    .unwrap();
    std::fs::write(
        dir.join("pic.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"300\" height=\"200\">\
         <rect width=\"300\" height=\"200\" fill=\"#2080e0\"/></svg>",
    )
    .unwrap();
    let s = server(&dir, "epoll");
    let profile = dir.join("profile");
    let out = sh(
        90,
        &format!(
            "chromium --headless --no-sandbox --disable-gpu --ignore-certificate-errors \
             --disable-background-networking --disable-component-update --no-first-run \
             --user-data-dir={} --virtual-time-budget=5000 --dump-dom https://{}/page.html 2>/dev/null",
            profile.display(),
            s.addr
        ),
    );
    let dom = text(&out.stdout);
    assert!(dom.contains("<title>loaded 300 https:</title>"), "{dom}");
}

/// testssl.sh, offline against the server: protocols, the server's
/// preferences, forward secrecy and the known vulnerabilities. Nothing of
/// severity MEDIUM or above except what a self-signed certificate must
/// draw (no chain of trust, no revocation information).
#[test]
fn testssl_finds_nothing_medium_or_worse() {
    let dir = tmp_dir("testssl");
    let s = server(&dir, "epoll");
    let json = dir.join("out.json");
    let out = sh(
        600,
        &format!(
            "testssl --quiet --color 0 --warnings off --protocols --server-defaults --fs --vulnerable \
             --jsonfile {} https://{} >/dev/null 2>&1; echo exit=$?",
            json.display(),
            s.addr
        ),
    );
    let report = std::fs::read_to_string(&json)
        .unwrap_or_else(|_| panic!("no testssl report: {}", text(&out.stdout)));
    let expected = ["cert_chain_of_trust", "cert_revocation"];
    let mut bad = Vec::new();
    let mut seen_protocols = false;
    // One finding per JSON object: pull out its id and severity.
    for obj in report.split('}') {
        let field = |name: &str| {
            obj.split(&format!("\"{name}\""))
                .nth(1)
                .and_then(|r| r.split('"').nth(1))
                .map(str::to_string)
        };
        let (Some(id), Some(sev)) = (field("id"), field("severity")) else {
            continue;
        };
        if id == "TLS1_3" {
            seen_protocols = true;
        }
        if matches!(sev.as_str(), "MEDIUM" | "HIGH" | "CRITICAL")
            && !expected.contains(&id.as_str())
        {
            bad.push(format!(
                "{sev} {id}: {}",
                field("finding").unwrap_or_default()
            ));
        }
    }
    assert!(seen_protocols, "testssl did not report protocols: {report}");
    assert!(bad.is_empty(), "testssl findings: {bad:#?}");
}

/// Behind a balancer that speaks the PROXY protocol and passes TLS
/// through: the header comes first, the handshake after it, and the
/// server sees the address the header names.
#[test]
fn a_proxy_header_before_the_handshake_names_the_client() {
    let s = Child::spawn(&[
        "http",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "0",
        "--tls-self-signed",
        "--proxy-protocol",
        "--proxy-from",
        "127.0.0.0/8",
    ]);
    // curl writes a v1 header with its own addresses, then speaks TLS.
    let out = sh(
        20,
        &format!(
            "curl -sSk --haproxy-protocol -w ' %{{local_ip}}:%{{local_port}}' https://{}/whoami",
            s.addr
        ),
    );
    let o = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (seen, local) = o.split_once('\n').expect("a line and curl's address");
    assert_eq!(seen, local.trim(), "{o}");
}
