//! Table-driven tests: each case is an inline command line (Redis quoting)
//! and the exact reply bytes.

use super::*;
use crate::codec::resp::split_inline_args;

const T0: u64 = 1_700_000_000_000;

struct H {
    store: Store,
    session: Session,
}

impl H {
    fn new() -> H {
        H {
            store: Store::with_manual_clock(T0),
            session: Session::with_id(7),
        }
    }

    fn exec(&mut self, args: &[Vec<u8>]) -> (String, Outcome) {
        let mut out = Vec::new();
        let o = execute(&self.store, &mut self.session, args, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), o)
    }

    fn q(&mut self, line: &str) -> String {
        let args = split_inline_args(line.as_bytes()).expect("test line quoting");
        let (reply, outcome) = self.exec(&args);
        assert_eq!(outcome, Outcome::Continue, "{line}");
        reply
    }

    fn check(&mut self, cases: &[(&str, &str)]) {
        for (line, want) in cases {
            assert_eq!(self.q(line), *want, "command: {line}");
        }
    }
}

fn arity(name: &str) -> String {
    format!("-ERR wrong number of arguments for '{name}' command\r\n")
}

const OK_: &str = "+OK\r\n";
const NIL: &str = "$-1\r\n";
const NOT_INT: &str = "-ERR value is not an integer or out of range\r\n";
const SYNTAX: &str = "-ERR syntax error\r\n";

#[test]
fn empty_args_do_nothing() {
    let mut h = H::new();
    assert_eq!(h.exec(&[]), (String::new(), Outcome::Continue));
}

#[test]
fn ping_echo_quit() {
    let mut h = H::new();
    h.check(&[
        ("PING", "+PONG\r\n"),
        ("ping", "+PONG\r\n"),
        ("PiNg hello", "$5\r\nhello\r\n"),
        ("PING \"\"", "$0\r\n\r\n"),
        ("PING a b", &arity("ping")),
        ("ECHO \"hi there\"", "$8\r\nhi there\r\n"),
        ("ECHO", &arity("echo")),
        ("ECHO a b", &arity("echo")),
    ]);
    let (reply, outcome) = h.exec(&[b"QUIT".to_vec()]);
    assert_eq!((reply.as_str(), outcome), (OK_, Outcome::Close));
    let (reply, outcome) = h.exec(&[b"quit".to_vec(), b"extra".to_vec()]);
    assert_eq!((reply.as_str(), outcome), (OK_, Outcome::Close));
}

#[test]
fn unknown_command_format() {
    let mut h = H::new();
    h.check(&[
        ("foo", "-ERR unknown command 'foo', with args beginning with: \r\n"),
        (
            "FOO a \"b c\"",
            "-ERR unknown command 'FOO', with args beginning with: 'a' 'b c' \r\n",
        ),
        (
            "averyveryveryverylongcommandname x",
            "-ERR unknown command 'averyveryveryverylongcommandname', with args beginning with: 'x' \r\n",
        ),
        (
            "foo \"a\\r\\nb\"",
            "-ERR unknown command 'foo', with args beginning with: 'a  b' \r\n",
        ),
    ]);
    // Argument list capped near 128 bytes, the last one truncated to fit.
    let long = "x".repeat(100);
    let reply = h.q(&format!("nope {long} {long} {long}"));
    let want = format!(
        "-ERR unknown command 'nope', with args beginning with: '{long}' '{}' \r\n",
        "x".repeat(25)
    );
    assert_eq!(reply, want);
    // Name capped at 128 bytes.
    let name = "n".repeat(300);
    let reply = h.q(&name);
    assert!(reply.starts_with(&format!("-ERR unknown command '{}',", "n".repeat(128))));
}

#[test]
fn every_listed_command_dispatches() {
    let mut h = H::new();
    for name in COMMAND_NAMES {
        if *name == "quit" {
            continue;
        }
        let reply = h.q(&format!("{} a b c d e f", name.to_uppercase()));
        assert!(!reply.contains("unknown command"), "{name}: {reply}");
    }
    h.check(&[("COMMAND COUNT", &format!(":{}\r\n", COMMAND_NAMES.len()))]);
}

#[test]
fn get_set_basics() {
    let mut h = H::new();
    h.check(&[
        ("GET k", NIL),
        ("SET k v", OK_),
        ("GET k", "$1\r\nv\r\n"),
        ("set k \"hello world\"", OK_),
        ("get k", "$11\r\nhello world\r\n"),
        ("SET \"\" \"\"", OK_),
        ("GET \"\"", "$0\r\n\r\n"),
        ("SET k", &arity("set")),
        ("GET", &arity("get")),
        ("GET a b", &arity("get")),
        ("SET bin \"\\x00\\xff\\r\\n\"", OK_),
        ("STRLEN bin", ":4\r\n"),
    ]);
    let (reply, _) = h.exec(&[b"GET".to_vec(), b"bin".to_vec()]);
    assert_eq!(reply.as_bytes()[..4], *b"$4\r\n");
}

#[test]
fn set_options() {
    let mut h = H::new();
    h.check(&[
        ("SET k v NX", OK_),
        ("SET k v2 NX", NIL),
        ("GET k", "$1\r\nv\r\n"),
        ("SET k v3 XX", OK_),
        ("GET k", "$2\r\nv3\r\n"),
        ("SET missing v XX", NIL),
        ("EXISTS missing", ":0\r\n"),
        ("SET k v4 GET", "$2\r\nv3\r\n"),
        ("SET new v GET", NIL),
        ("GET new", "$1\r\nv\r\n"),
        ("SET k v5 NX GET", "$2\r\nv4\r\n"),
        ("GET k", "$2\r\nv4\r\n"),
        ("SET other x XX GET", NIL),
        ("EXISTS other", ":0\r\n"),
        ("SET k v nx xx", SYNTAX),
        ("SET k v xx nx", SYNTAX),
        ("SET k v nx nx", NIL),
        ("SET k v foo", SYNTAX),
        ("SET k v EX", SYNTAX),
        ("SET k v EX 10 PX 100", SYNTAX),
        ("SET k v EX 10 KEEPTTL", SYNTAX),
        ("SET k v KEEPTTL EX 10", SYNTAX),
        ("SET k v EX abc", NOT_INT),
        (
            "SET k v EX 0",
            "-ERR invalid expire time in 'set' command\r\n",
        ),
        (
            "SET k v PX -5",
            "-ERR invalid expire time in 'set' command\r\n",
        ),
        (
            "SET k v EX 9223372036854775",
            "-ERR invalid expire time in 'set' command\r\n",
        ),
        (
            "SET k v PX 9223372036854775807",
            "-ERR invalid expire time in 'set' command\r\n",
        ),
        ("GET k", "$2\r\nv4\r\n"),
    ]);
}

#[test]
fn set_expiry_and_keepttl() {
    let mut h = H::new();
    h.check(&[
        ("SET k v EX 10", OK_),
        ("TTL k", ":10\r\n"),
        ("PTTL k", ":10000\r\n"),
        ("SET k v2 KEEPTTL", OK_),
        ("PTTL k", ":10000\r\n"),
        ("SET k v3", OK_),
        ("TTL k", ":-1\r\n"),
        ("SET k v PX 1500", OK_),
        ("TTL k", ":2\r\n"),        // rounded
        ("SET k v EX 5 EX 7", OK_), // same unit repeated: last wins
        ("TTL k", ":7\r\n"),
    ]);
    let at = (T0 / 1000 + 100).to_string();
    h.check(&[
        (&format!("SET k v EXAT {at}"), OK_),
        ("TTL k", ":100\r\n"),
        (&format!("SET k v PXAT {}", T0 + 2500), OK_),
        ("PTTL k", ":2500\r\n"),
    ]);
    h.store.advance_clock(2499);
    h.check(&[("PTTL k", ":1\r\n"), ("GET k", "$1\r\nv\r\n")]);
    h.store.advance_clock(1);
    h.check(&[("GET k", NIL), ("TTL k", ":-2\r\n"), ("EXISTS k", ":0\r\n")]);
}

#[test]
fn getset_setnx_setex() {
    let mut h = H::new();
    h.check(&[
        ("GETSET k a", NIL),
        ("GETSET k b", "$1\r\na\r\n"),
        ("GET k", "$1\r\nb\r\n"),
        ("GETSET k", &arity("getset")),
        ("SETNX k c", ":0\r\n"),
        ("SETNX n c", ":1\r\n"),
        ("SETEX e 10 v", OK_),
        ("TTL e", ":10\r\n"),
        ("GETSET e w", "$1\r\nv\r\n"),
        ("TTL e", ":-1\r\n"),
        (
            "SETEX e 0 v",
            "-ERR invalid expire time in 'setex' command\r\n",
        ),
        ("SETEX e x v", NOT_INT),
        ("PSETEX e 1500 v", OK_),
        ("PTTL e", ":1500\r\n"),
        (
            "PSETEX e -1 v",
            "-ERR invalid expire time in 'psetex' command\r\n",
        ),
        ("SETEX e 10", &arity("setex")),
    ]);
}

#[test]
fn del_exists_unlink_type() {
    let mut h = H::new();
    h.check(&[
        ("MSET a 1 b 2 c 3", OK_),
        ("EXISTS a b x", ":2\r\n"),
        ("EXISTS a a a", ":3\r\n"),
        ("DEL a x", ":1\r\n"),
        ("DEL a", ":0\r\n"),
        ("UNLINK b c", ":2\r\n"),
        ("DEL", &arity("del")),
        ("EXISTS", &arity("exists")),
        ("SET s v", OK_),
        ("TYPE s", "+string\r\n"),
        ("TYPE nope", "+none\r\n"),
    ]);
}

#[test]
fn counters() {
    let mut h = H::new();
    h.check(&[
        ("INCR n", ":1\r\n"),
        ("INCR n", ":2\r\n"),
        ("DECR n", ":1\r\n"),
        ("INCRBY n 10", ":11\r\n"),
        ("DECRBY n 20", ":-9\r\n"),
        ("GET n", "$2\r\n-9\r\n"),
        ("INCRBY n abc", NOT_INT),
        ("INCRBY n 1.5", NOT_INT),
        ("DECRBY n 0x1", NOT_INT),
        ("SET s hello", OK_),
        ("INCR s", NOT_INT),
        ("SET s \" 1\"", OK_),
        ("INCR s", NOT_INT),
        ("SET s 01", OK_),
        ("INCR s", NOT_INT),
        ("SET s \"\"", OK_),
        ("INCR s", NOT_INT),
        ("SET m 9223372036854775807", OK_),
        ("INCR m", "-ERR increment or decrement would overflow\r\n"),
        ("INCRBY m -1", ":9223372036854775806\r\n"),
        ("SET m -9223372036854775808", OK_),
        ("DECR m", "-ERR increment or decrement would overflow\r\n"),
        (
            "DECRBY x -9223372036854775808",
            "-ERR decrement would overflow\r\n",
        ),
        ("INCRBY x -9223372036854775808", ":-9223372036854775808\r\n"),
        ("INCR", &arity("incr")),
        ("INCRBY x", &arity("incrby")),
        ("DECRBY x 1 2", &arity("decrby")),
    ]);
}

#[test]
fn incr_keeps_ttl() {
    let mut h = H::new();
    h.check(&[
        ("SET n 5 EX 100", OK_),
        ("INCR n", ":6\r\n"),
        ("TTL n", ":100\r\n"),
        ("APPEND n 0", ":2\r\n"),
        ("TTL n", ":100\r\n"),
        ("GET n", "$2\r\n60\r\n"),
    ]);
}

#[test]
fn mget_mset() {
    let mut h = H::new();
    h.check(&[
        ("MSET a 1 b 2", OK_),
        ("MGET a b c", "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"),
        ("MSET a", &arity("mset")),
        ("MSET a 1 b", &arity("mset")),
        ("MGET", &arity("mget")),
        ("SET t x EX 10", OK_),
        ("MSET t y", OK_),
        ("TTL t", ":-1\r\n"),
        ("MSET a 1 a 2", OK_),
        ("GET a", "$1\r\n2\r\n"),
    ]);
}

#[test]
fn append_strlen() {
    let mut h = H::new();
    h.check(&[
        ("APPEND k abc", ":3\r\n"),
        ("APPEND k def", ":6\r\n"),
        ("GET k", "$6\r\nabcdef\r\n"),
        ("STRLEN k", ":6\r\n"),
        ("STRLEN nope", ":0\r\n"),
        ("APPEND k", &arity("append")),
        ("STRLEN", &arity("strlen")),
    ]);
}

#[test]
fn expire_family() {
    let mut h = H::new();
    h.check(&[
        ("EXPIRE nope 10", ":0\r\n"),
        ("SET k v", OK_),
        ("TTL k", ":-1\r\n"),
        ("PTTL k", ":-1\r\n"),
        ("TTL nope", ":-2\r\n"),
        ("PTTL nope", ":-2\r\n"),
        ("EXPIRE k 10", ":1\r\n"),
        ("TTL k", ":10\r\n"),
        ("PEXPIRE k 2500", ":1\r\n"),
        ("PTTL k", ":2500\r\n"),
        ("TTL k", ":3\r\n"),
        ("PERSIST k", ":1\r\n"),
        ("PERSIST k", ":0\r\n"),
        ("PERSIST nope", ":0\r\n"),
        ("TTL k", ":-1\r\n"),
        ("EXPIRE k abc", NOT_INT),
        (
            "EXPIRE k 9223372036854775807",
            "-ERR invalid expire time in 'expire' command\r\n",
        ),
        (
            "PEXPIRE k 9223372036854775807",
            "-ERR invalid expire time in 'pexpire' command\r\n",
        ),
        ("EXPIRE k", &arity("expire")),
        ("TTL", &arity("ttl")),
        // NX / XX / GT / LT
        ("EXPIRE k 100 XX", ":0\r\n"),
        ("EXPIRE k 100 GT", ":0\r\n"),
        ("EXPIRE k 100 NX", ":1\r\n"),
        ("EXPIRE k 200 NX", ":0\r\n"),
        ("EXPIRE k 50 GT", ":0\r\n"),
        ("EXPIRE k 150 GT", ":1\r\n"),
        ("EXPIRE k 160 LT", ":0\r\n"),
        ("EXPIRE k 120 lt", ":1\r\n"),
        ("TTL k", ":120\r\n"),
        ("EXPIRE k 130 XX", ":1\r\n"),
        (
            "EXPIRE k 10 NX XX",
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
        ),
        (
            "EXPIRE k 10 GT LT",
            "-ERR GT and LT options at the same time are not compatible\r\n",
        ),
        ("EXPIRE k 10 FOO", "-ERR Unsupported option FOO\r\n"),
        ("TTL k", ":130\r\n"),
        ("PERSIST k", ":1\r\n"),
        ("EXPIRE k 10 LT", ":1\r\n"),
        // A deadline in the past deletes the key.
        ("EXPIRE k -1", ":1\r\n"),
        ("EXISTS k", ":0\r\n"),
        ("SET k v", OK_),
        ("PEXPIRE k 0", ":1\r\n"),
        ("GET k", NIL),
    ]);
    let secs = T0 / 1000 + 60;
    h.check(&[
        ("SET k v", OK_),
        (&format!("EXPIREAT k {secs}"), ":1\r\n"),
        ("TTL k", ":60\r\n"),
        (&format!("PEXPIREAT k {}", T0 + 1234), ":1\r\n"),
        ("PTTL k", ":1234\r\n"),
        (&format!("PEXPIREAT k {}", T0 - 1), ":1\r\n"),
        ("EXISTS k", ":0\r\n"),
        ("EXPIREAT k x", NOT_INT),
    ]);
}

#[test]
fn expiry_via_clock_and_sweep() {
    let mut h = H::new();
    h.check(&[
        ("SET a 1 PX 100", OK_),
        ("SET b 2 PX 200", OK_),
        ("SET c 3", OK_),
        ("DBSIZE", ":3\r\n"),
    ]);
    h.store.advance_clock(150);
    assert_eq!(h.store.sweep(100), 1);
    h.check(&[
        ("DBSIZE", ":2\r\n"),
        ("EXISTS a b c", ":2\r\n"),
        ("MGET a b c", "*3\r\n$-1\r\n$1\r\n2\r\n$1\r\n3\r\n"),
    ]);
    h.store.advance_clock(50);
    h.check(&[("GET b", NIL), ("DBSIZE", ":1\r\n")]);
    assert_eq!(h.store.sweep(100), 0);
}

fn sorted_keys(reply: &str) -> Vec<String> {
    let mut lines: Vec<String> = reply
        .split("\r\n")
        .skip(1)
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| c[1].to_string())
        .collect();
    lines.sort();
    lines
}

#[test]
fn keys_and_dbsize_and_flush() {
    let mut h = H::new();
    h.check(&[
        ("MSET hello 1 hallo 2 hxllo 3 world 4 h 5", OK_),
        ("DBSIZE", ":5\r\n"),
        ("KEYS nomatch*", "*0\r\n"),
        ("KEYS", &arity("keys")),
    ]);
    assert_eq!(sorted_keys(&h.q("KEYS h?llo")), ["hallo", "hello", "hxllo"]);
    assert_eq!(sorted_keys(&h.q("KEYS h[ae]llo")), ["hallo", "hello"]);
    assert_eq!(sorted_keys(&h.q("KEYS h[^e]llo")), ["hallo", "hxllo"]);
    assert_eq!(
        sorted_keys(&h.q("KEYS *o*")),
        ["hallo", "hello", "hxllo", "world"]
    );
    assert_eq!(sorted_keys(&h.q("KEYS *")).len(), 5);
    assert!(h.q("KEYS *").starts_with("*5\r\n"));
    h.check(&[
        ("FLUSHDB", OK_),
        ("DBSIZE", ":0\r\n"),
        ("SET a 1", OK_),
        ("FLUSHALL ASYNC", OK_),
        ("DBSIZE", ":0\r\n"),
        ("FLUSHALL sync", OK_),
        ("FLUSHALL foo", SYNTAX),
        ("FLUSHDB a b", SYNTAX),
        ("DBSIZE x", &arity("dbsize")),
    ]);
}

#[test]
fn select_db() {
    let mut h = H::new();
    h.check(&[
        ("SELECT 0", OK_),
        ("SELECT 1", "-ERR DB index is out of range\r\n"),
        ("SELECT -1", "-ERR DB index is out of range\r\n"),
        ("SELECT abc", NOT_INT),
        ("SELECT 99999999999", NOT_INT),
        ("SELECT", &arity("select")),
    ]);
}

#[test]
fn info_sections() {
    let mut h = H::new();
    h.q("SET a 1 EX 100");
    h.q("SET b 2");
    let info = h.q("INFO");
    assert!(info.starts_with('$'));
    for needle in [
        "# Server\r\n",
        "redis_version:7.0.0\r\n",
        "redis_mode:standalone\r\n",
        "# Keyspace\r\n",
        "db0:keys=2,expires=1,avg_ttl=0\r\n",
    ] {
        assert!(info.contains(needle), "{needle:?} missing in {info:?}");
    }
    // The bulk length is right.
    let (len, body) = info[1..].split_once("\r\n").unwrap();
    assert_eq!(len.parse::<usize>().unwrap() + 2, body.len());
    let ks = h.q("info keyspace");
    assert!(ks.contains("# Keyspace") && !ks.contains("# Server"));
    let srv = h.q("INFO server");
    assert!(srv.contains("# Server") && !srv.contains("# Keyspace"));
    assert_eq!(h.q("INFO nosuchsection"), "$0\r\n\r\n");
    h.q("FLUSHALL");
    assert!(!h.q("INFO keyspace").contains("db0"));
}

#[test]
fn command_subcommands() {
    let mut h = H::new();
    h.check(&[
        ("COMMAND", "*0\r\n"),
        ("COMMAND DOCS", "*0\r\n"),
        ("command docs get set", "*0\r\n"),
        ("COMMAND COUNT x", &arity("command|count")),
        (
            "COMMAND FOO",
            "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n",
        ),
    ]);
    let list = h.q("COMMAND LIST");
    assert!(list.starts_with(&format!("*{}\r\n", COMMAND_NAMES.len())));
    assert!(list.contains("$3\r\nget\r\n"));
}

#[test]
fn client_subcommands() {
    let mut h = H::new();
    h.check(&[
        ("CLIENT GETNAME", NIL),
        ("CLIENT SETNAME myconn", OK_),
        ("CLIENT GETNAME", "$6\r\nmyconn\r\n"),
        (
            "CLIENT SETNAME \"bad name\"",
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
        (
            "CLIENT SETNAME \"bad\\nname\"",
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
        ("CLIENT GETNAME", "$6\r\nmyconn\r\n"),
        ("CLIENT SETNAME \"\"", OK_),
        ("CLIENT GETNAME", NIL),
        ("CLIENT ID", ":7\r\n"),
        ("client id", ":7\r\n"),
        ("CLIENT", &arity("client")),
        ("CLIENT SETNAME", &arity("client|setname")),
        ("CLIENT GETNAME x", &arity("client|getname")),
        ("CLIENT ID x", &arity("client|id")),
        (
            "client nope",
            "-ERR unknown subcommand 'nope'. Try CLIENT HELP.\r\n",
        ),
        ("CLIENT SETINFO lib-name redis-py", OK_),
        ("CLIENT SETINFO LIB-VER 5.0.1", OK_),
        (
            "CLIENT SETINFO color red",
            "-ERR Unrecognized option 'color'\r\n",
        ),
        (
            "CLIENT SETINFO lib-name \"a b\"",
            "-ERR lib-name cannot contain spaces, newlines or special characters.\r\n",
        ),
        ("CLIENT SETINFO lib-name", &arity("client|setinfo")),
    ]);
    h.session.set_peer_addr("127.0.0.1:5555");
    h.session.set_local_addr("127.0.0.1:6379");
    h.session.set_fd(9);
    h.q("CLIENT SETNAME conn1");
    let info = h.q("CLIENT INFO");
    let (len, body) = info[1..].split_once("\r\n").unwrap();
    assert_eq!(len.parse::<usize>().unwrap() + 2, body.len());
    assert!(body.starts_with("id=7 addr=127.0.0.1:5555 laddr=127.0.0.1:6379 fd=9 name=conn1 age="));
    assert!(body.contains(" db=0 "));
    assert!(body.contains(" resp=2 lib-name=redis-py lib-ver=5.0.1\n\r\n"));
}

#[test]
fn function_config_auth() {
    let mut h = H::new();
    h.check(&[
        ("FUNCTION FLUSH", OK_),
        ("FUNCTION FLUSH ASYNC", OK_),
        ("FUNCTION FLUSH bogus", SYNTAX),
        ("FUNCTION", &arity("function")),
        (
            "FUNCTION LIST",
            "-ERR unknown subcommand 'LIST'. Try FUNCTION HELP.\r\n",
        ),
        ("CONFIG GET save", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"),
        (
            "CONFIG GET appendonly",
            "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
        ),
        ("config get SAVE", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"),
        ("CONFIG GET nosuch", "*0\r\n"),
        (
            "CONFIG GET save save appendonly",
            "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
        ),
        ("CONFIG GET", &arity("config|get")),
        ("CONFIG", &arity("config")),
        ("CONFIG RESETSTAT", OK_),
        (
            "CONFIG FOO",
            "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n",
        ),
        (
            "AUTH secret",
            "-ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?\r\n",
        ),
        ("AUTH default whatever", OK_),
        (
            "AUTH bob pw",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        ("AUTH a b c", SYNTAX),
        ("AUTH", &arity("auth")),
    ]);
    let all = h.q("CONFIG GET *");
    // The fixed parameters, save, maxmemory(-policy), nine thresholds (old
    // names included) and three list tunables.
    assert!(all.starts_with(&format!("*{}\r\n", 2 * (CONFIG_FIXED.len() + 15))));
    assert!(h.q("CONFIG GET max*").contains("maxmemory-policy"));
}

#[test]
fn hello() {
    let mut h = H::new();
    let map = "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
               $5\r\nproto\r\n:2\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
               $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";
    h.check(&[
        ("HELLO", map),
        ("HELLO 2", map),
        ("HELLO 3", "-NOPROTO unsupported protocol version\r\n"),
        ("HELLO 1", "-NOPROTO unsupported protocol version\r\n"),
        (
            "HELLO x",
            "-ERR Protocol version is not an integer or out of range\r\n",
        ),
        ("HELLO 2 SETNAME app1", map),
        ("CLIENT GETNAME", "$4\r\napp1\r\n"),
        ("HELLO 2 AUTH default pw SETNAME app2", map),
        ("CLIENT GETNAME", "$4\r\napp2\r\n"),
        (
            "HELLO 2 AUTH bob pw",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            "HELLO 2 AUTH default",
            "-ERR Syntax error in HELLO option 'AUTH'\r\n",
        ),
        ("HELLO 2 FOO", "-ERR Syntax error in HELLO option 'FOO'\r\n"),
        (
            "HELLO 2 SETNAME \"a b\"",
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
    ]);
}

#[test]
fn time_reply_shape() {
    let mut h = H::new();
    let t = h.q("TIME");
    assert!(t.starts_with("*2\r\n$10\r\n"), "{t}");
    h.check(&[("TIME x", &arity("time"))]);
}

#[test]
fn case_insensitive_names_and_options() {
    let mut h = H::new();
    h.check(&[
        ("sEt k v pX 1000 Nx", OK_),
        ("pTtL k", ":1000\r\n"),
        ("MgEt k", "*1\r\n$1\r\nv\r\n"),
    ]);
}

#[test]
fn works_with_borrowed_args() {
    let store = Store::new();
    let mut session = Session::new();
    let mut out = Vec::new();
    let args: [&[u8]; 3] = [b"SET", b"k", b"\x00\x01"];
    assert_eq!(
        execute(&store, &mut session, &args, &mut out),
        Outcome::Continue
    );
    let args: Vec<&str> = vec!["GET", "k"];
    execute(&store, &mut session, &args, &mut out);
    assert_eq!(out, b"+OK\r\n$2\r\n\x00\x01\r\n");
}

#[test]
fn sessions_get_distinct_ids() {
    let a = Session::new();
    let b = Session::new();
    assert_ne!(a.id(), b.id());
    assert_eq!(Session::with_id(42).id(), 42);
    assert_eq!(a.name(), None);
}

#[test]
fn decoder_to_execute_pipeline() {
    use crate::codec::resp::CommandDecoder;
    use crate::codec::Decoder;
    let store = Store::new();
    let mut session = Session::new();
    let mut decoder = CommandDecoder::new();
    let mut input =
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n\r\nget key\r\nINCR key\r\nQUIT\r\nPING\r\n"
            .to_vec();
    let mut out = Vec::new();
    let mut closed = false;
    while let Some((args, n)) = decoder.decode(&input).unwrap() {
        input.drain(..n);
        if execute(&store, &mut session, &args, &mut out) == Outcome::Close {
            closed = true;
            break;
        }
    }
    assert!(closed);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "+OK\r\n$5\r\nvalue\r\n-ERR value is not an integer or out of range\r\n+OK\r\n"
    );
    assert_eq!(input, b"PING\r\n");
}

/// The bulk strings of a reply (a bulk, or an array of bulks).
fn bulks(reply: &str) -> Vec<String> {
    reply
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
        .map(str::to_owned)
        .collect()
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

#[test]
fn lists_push_pop_range_and_edit() {
    let mut h = H::new();
    h.check(&[
        ("RPUSH l a b c", ":3\r\n"),
        ("LPUSH l z", ":4\r\n"),
        ("TYPE l", "+list\r\n"),
        ("LLEN l", ":4\r\n"),
        (
            "LRANGE l 0 -1",
            "*4\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        ),
        ("LRANGE l 1 2", "*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
        ("LRANGE l -2 100", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("LRANGE l 5 10", "*0\r\n"),
        ("LRANGE l 2 1", "*0\r\n"),
        ("LRANGE l x 1", NOT_INT),
        ("LINDEX l 0", "$1\r\nz\r\n"),
        ("LINDEX l -1", "$1\r\nc\r\n"),
        ("LINDEX l 4", NIL),
        ("LSET l 1 A", OK_),
        ("LSET l 9 A", "-ERR index out of range\r\n"),
        ("LSET nokey 0 A", "-ERR no such key\r\n"),
        ("LPOP l", "$1\r\nz\r\n"),
        ("RPOP l 2", "*2\r\n$1\r\nc\r\n$1\r\nb\r\n"),
        ("LPOP l 0", "*0\r\n"),
        (
            "LPOP l -1",
            "-ERR value is out of range, must be positive\r\n",
        ),
        ("LPOP l", "$1\r\nA\r\n"),
        // Emptied: the key is gone.
        ("EXISTS l", ":0\r\n"),
        ("TYPE l", "+none\r\n"),
        ("LPOP l", NIL),
        ("LPOP l 3", "*-1\r\n"),
        ("LLEN l", ":0\r\n"),
        ("LPUSHX l a", ":0\r\n"),
        ("EXISTS l", ":0\r\n"),
        ("RPUSH l a", ":1\r\n"),
        ("RPUSHX l b", ":2\r\n"),
        ("LPUSHX l c", ":3\r\n"),
        ("LRANGE l 0 -1", "*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n"),
    ]);
}

#[test]
fn lists_trim_and_remove() {
    let mut h = H::new();
    h.check(&[
        ("RPUSH l a b a c a d", ":6\r\n"),
        ("LREM l 2 a", ":2\r\n"),
        (
            "LRANGE l 0 -1",
            "*4\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nd\r\n",
        ),
        ("RPUSH l a", ":5\r\n"),
        ("LREM l -1 a", ":1\r\n"),
        (
            "LRANGE l 0 -1",
            "*4\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nd\r\n",
        ),
        ("LREM l 0 zz", ":0\r\n"),
        ("LTRIM l 1 -2", OK_),
        ("LRANGE l 0 -1", "*2\r\n$1\r\nc\r\n$1\r\na\r\n"),
        ("LTRIM l 5 9", OK_),
        ("EXISTS l", ":0\r\n"),
        ("LTRIM nokey 0 1", OK_),
        ("LREM nokey 0 a", ":0\r\n"),
    ]);
}

#[test]
fn hashes_set_get_incr_and_delete() {
    let mut h = H::new();
    h.check(&[
        ("HSET h f1 v1 f2 v2", ":2\r\n"),
        ("HSET h f1 w1 f3 v3", ":1\r\n"),
        ("HSET h f1", &arity("hset")),
        ("HSET h f1 v1 f2", &arity("hset")),
        ("TYPE h", "+hash\r\n"),
        ("HGET h f1", "$2\r\nw1\r\n"),
        ("HGET h nope", NIL),
        ("HGET nokey f", NIL),
        (
            "HMGET h f1 nope f3",
            "*3\r\n$2\r\nw1\r\n$-1\r\n$2\r\nv3\r\n",
        ),
        ("HLEN h", ":3\r\n"),
        ("HEXISTS h f2", ":1\r\n"),
        ("HEXISTS h f9", ":0\r\n"),
        ("HSTRLEN h f3", ":2\r\n"),
        ("HSETNX h f1 x", ":0\r\n"),
        ("HSETNX h f4 x", ":1\r\n"),
        ("HMSET h f5 5", OK_),
        ("HINCRBY h f5 10", ":15\r\n"),
        ("HINCRBY h new -3", ":-3\r\n"),
        ("HINCRBY h f1 1", "-ERR hash value is not an integer\r\n"),
        ("HINCRBY h f5 x", NOT_INT),
        (
            "HINCRBY h f5 9223372036854775807",
            "-ERR increment or decrement would overflow\r\n",
        ),
        // A refused increment does not create the key.
        ("HINCRBY fresh f x", NOT_INT),
        ("EXISTS fresh", ":0\r\n"),
        ("HDEL h f1 f2 nope", ":2\r\n"),
        ("HDEL h f3 f4 f5 new", ":4\r\n"),
        ("EXISTS h", ":0\r\n"),
        ("HGETALL h", "*0\r\n"),
        ("HSET one f v", ":1\r\n"),
        ("HGETALL one", "*2\r\n$1\r\nf\r\n$1\r\nv\r\n"),
        ("HKEYS one", "*1\r\n$1\r\nf\r\n"),
        ("HVALS one", "*1\r\n$1\r\nv\r\n"),
    ]);
}

#[test]
fn sets_add_remove_pop() {
    let mut h = H::new();
    h.check(&[
        ("SADD s a b c a", ":3\r\n"),
        ("SADD s c d", ":1\r\n"),
        ("TYPE s", "+set\r\n"),
        ("SCARD s", ":4\r\n"),
        ("SISMEMBER s a", ":1\r\n"),
        ("SISMEMBER s z", ":0\r\n"),
        ("SMISMEMBER s a z d", "*3\r\n:1\r\n:0\r\n:1\r\n"),
        ("SREM s a z", ":1\r\n"),
        ("SCARD nokey", ":0\r\n"),
        ("SMEMBERS nokey", "*0\r\n"),
        ("SPOP nokey", NIL),
        ("SPOP nokey 2", "*0\r\n"),
        (
            "SPOP s -1",
            "-ERR value is out of range, must be positive\r\n",
        ),
    ]);
    // Members come out in no fixed order: check them as a set.
    let members = h.q("SMEMBERS s");
    assert!(members.starts_with("*3\r\n"), "{members}");
    for m in ["b", "c", "d"] {
        assert!(members.contains(&format!("$1\r\n{m}\r\n")), "{members}");
    }
    let one = h.q("SPOP s");
    let two = h.q("SPOP s 5");
    assert!(two.starts_with("*2\r\n"), "{two}");
    // The three members, each popped once.
    let mut all = bulks(&one);
    all.extend(bulks(&two));
    all.sort();
    assert_eq!(all, ["b", "c", "d"]);
    h.check(&[("EXISTS s", ":0\r\n")]);
}

/// Each type's commands refuse the others' keys with WRONGTYPE, the string
/// commands included; SET overwrites any type, MGET reads nil, DEL and TYPE
/// work on all.
#[test]
fn wrong_types_are_refused_and_strings_overwrite() {
    let mut h = H::new();
    h.check(&[
        ("SET str v", OK_),
        ("RPUSH list a", ":1\r\n"),
        ("HSET hash f v", ":1\r\n"),
        ("SADD set m", ":1\r\n"),
        ("LPUSH str x", WRONGTYPE),
        ("LRANGE hash 0 -1", WRONGTYPE),
        ("LPOP set", WRONGTYPE),
        ("HSET list f v", WRONGTYPE),
        ("HGET str f", WRONGTYPE),
        ("HGETALL set", WRONGTYPE),
        ("SADD hash m", WRONGTYPE),
        ("SMEMBERS list", WRONGTYPE),
        ("GET list", WRONGTYPE),
        ("INCR hash", WRONGTYPE),
        ("APPEND set x", WRONGTYPE),
        ("STRLEN list", WRONGTYPE),
        ("GETSET hash v", WRONGTYPE),
        ("SET list x GET", WRONGTYPE),
        ("LRANGE list 0 -1", "*1\r\n$1\r\na\r\n"),
        ("MGET str list", "*2\r\n$1\r\nv\r\n$-1\r\n"),
        ("SET list now-a-string", OK_),
        ("TYPE list", "+string\r\n"),
        ("GET list", "$12\r\nnow-a-string\r\n"),
        ("DEL hash set", ":2\r\n"),
        ("TYPE hash", "+none\r\n"),
    ]);
}

#[test]
fn rename_copy_and_msetnx_move_values_with_their_ttl() {
    let mut h = H::new();
    h.check(&[
        ("SET a 1 PX 5000", OK_),
        ("RENAME a b", OK_),
        ("EXISTS a", ":0\r\n"),
        ("GET b", "$1\r\n1\r\n"),
        ("PTTL b", ":5000\r\n"),
        ("RENAME nope b", "-ERR no such key\r\n"),
        ("RPUSH l x", ":1\r\n"),
        ("RENAMENX b l", ":0\r\n"),
        ("RENAMENX b b", ":0\r\n"),
        ("RENAMENX b c", ":1\r\n"),
        ("RENAME c c", OK_),
        ("TYPE c", "+string\r\n"),
        ("RENAME l c", OK_),
        ("TYPE c", "+list\r\n"),
        ("COPY c d", ":1\r\n"),
        ("COPY c d", ":0\r\n"),
        ("COPY c d REPLACE", ":1\r\n"),
        (
            "COPY c c",
            "-ERR source and destination objects are the same\r\n",
        ),
        ("COPY c e DB 1", "-ERR DB index is out of range\r\n"),
        ("COPY c e DB 0", ":1\r\n"),
        ("COPY c e BOGUS", SYNTAX),
        ("COPY nope e", ":0\r\n"),
        ("RPUSH d y", ":2\r\n"),
        // The copy is its own list.
        ("LLEN c", ":1\r\n"),
        ("MSETNX m1 a m2 b", ":1\r\n"),
        ("MSETNX m2 x m3 y", ":0\r\n"),
        ("EXISTS m3", ":0\r\n"),
        ("MSETNX m3", &arity("msetnx")),
        ("MGET m1 m2", "*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
    ]);
}

#[test]
fn lmove_rpoplpush_smove_and_set_algebra() {
    let mut h = H::new();
    h.check(&[
        ("RPUSH src a b c", ":3\r\n"),
        ("LMOVE src dst LEFT RIGHT", "$1\r\na\r\n"),
        ("LMOVE src dst right left", "$1\r\nc\r\n"),
        ("LMOVE src dst UP LEFT", SYNTAX),
        ("LRANGE dst 0 -1", "*2\r\n$1\r\nc\r\n$1\r\na\r\n"),
        ("RPOPLPUSH src dst", "$1\r\nb\r\n"),
        ("EXISTS src", ":0\r\n"),
        ("RPOPLPUSH src dst", NIL),
        ("SET str v", OK_),
        ("RPOPLPUSH dst str", WRONGTYPE),
        ("LLEN dst", ":3\r\n"),
        ("RPOPLPUSH dst dst", "$1\r\na\r\n"),
        ("LRANGE dst 0 -1", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("SADD s1 a b c", ":3\r\n"),
        ("SADD s2 b c d", ":3\r\n"),
        ("SMOVE s1 s3 a", ":1\r\n"),
        ("SMOVE s1 s3 zz", ":0\r\n"),
        ("SMOVE s1 str b", WRONGTYPE),
        ("SISMEMBER s1 b", ":1\r\n"),
        ("SMOVE s3 s3 a", ":1\r\n"),
        ("SINTERSTORE out s1 s2", ":2\r\n"),
        ("SMISMEMBER out b c d", "*3\r\n:1\r\n:1\r\n:0\r\n"),
        ("SUNIONSTORE out s1 s2 s3", ":4\r\n"),
        ("SDIFFSTORE out s2 s1", ":1\r\n"),
        ("SMEMBERS out", "*1\r\n$1\r\nd\r\n"),
        ("SDIFFSTORE out s1 s1", ":0\r\n"),
        ("EXISTS out", ":0\r\n"),
        ("SINTER s1 nope", "*0\r\n"),
        ("SINTER s1 str", WRONGTYPE),
        ("SUNION str s1", WRONGTYPE),
        ("SINTERSTORE str s1 s2", ":2\r\n"),
        ("TYPE str", "+set\r\n"),
        ("SINTERCARD 2 s1 s2", ":2\r\n"),
        ("SINTERCARD 2 s1 s2 LIMIT 1", ":1\r\n"),
        (
            "SINTERCARD 0 s1",
            "-ERR numkeys should be greater than 0\r\n",
        ),
        (
            "SINTERCARD 3 s1 s2",
            "-ERR Number of keys can't be greater than number of args\r\n",
        ),
        (
            "SINTERCARD 1 s1 LIMIT -1",
            "-ERR LIMIT can't be negative\r\n",
        ),
        ("SINTERCARD 1 s1 LIMITS 1", SYNTAX),
    ]);
    let u = h.q("SUNION s1 s2");
    let mut got = bulks(&u);
    got.sort();
    assert_eq!(got, ["b", "c", "d"]);
}

#[test]
fn string_ranges_floats_and_getex() {
    let mut h = H::new();
    h.check(&[
        ("SET s \"Hello World\"", OK_),
        ("GETRANGE s 0 4", "$5\r\nHello\r\n"),
        ("GETRANGE s -5 -1", "$5\r\nWorld\r\n"),
        ("GETRANGE s 5 1", "$0\r\n\r\n"),
        ("GETRANGE s 0 100", "$11\r\nHello World\r\n"),
        ("GETRANGE nope 0 1", "$0\r\n\r\n"),
        ("SETRANGE s 6 Redis", ":11\r\n"),
        ("GET s", "$11\r\nHello Redis\r\n"),
        ("SETRANGE pad 3 x", ":4\r\n"),
        ("GET pad", "$4\r\n\0\0\0x\r\n"),
        ("SETRANGE none 5 \"\"", ":0\r\n"),
        ("EXISTS none", ":0\r\n"),
        ("SETRANGE s -1 x", "-ERR offset is out of range\r\n"),
        (
            "SETRANGE s 536870911 xx",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n",
        ),
        ("SET f 10.50", OK_),
        ("INCRBYFLOAT f 0.1", "$4\r\n10.6\r\n"),
        ("INCRBYFLOAT f -5", "$3\r\n5.6\r\n"),
        ("INCRBYFLOAT f 5.0e3", "$6\r\n5005.6\r\n"),
        ("INCRBYFLOAT f abc", "-ERR value is not a valid float\r\n"),
        ("INCRBYFLOAT s 1", "-ERR value is not a valid float\r\n"),
        ("INCRBYFLOAT nf 3", "$1\r\n3\r\n"),
        ("SET big 1.7976931348623157e308", OK_),
        (
            "INCRBYFLOAT big 1.7976931348623157e308",
            "-ERR increment would produce NaN or Infinity\r\n",
        ),
        ("GET big", "$22\r\n1.7976931348623157e308\r\n"),
        ("RPUSH l a", ":1\r\n"),
        ("INCRBYFLOAT l 1", WRONGTYPE),
        ("GETDEL s", "$11\r\nHello Redis\r\n"),
        ("GETDEL s", NIL),
        ("GETDEL l", WRONGTYPE),
        ("SET g v", OK_),
        ("GETEX g EX 100", "$1\r\nv\r\n"),
        ("TTL g", ":100\r\n"),
        ("EXPIRETIME g", &format!(":{}\r\n", T0 / 1000 + 100)),
        ("PEXPIRETIME g", &format!(":{}\r\n", T0 + 100_000)),
        ("GETEX g PERSIST", "$1\r\nv\r\n"),
        ("TTL g", ":-1\r\n"),
        ("EXPIRETIME g", ":-1\r\n"),
        ("EXPIRETIME nope", ":-2\r\n"),
        (
            "GETEX g PX 0",
            "-ERR invalid expire time in 'getex' command\r\n",
        ),
        ("GETEX g BOGUS 1", SYNTAX),
        ("GETEX nope EX 10", NIL),
        ("GETEX l", WRONGTYPE),
    ]);
}

#[test]
fn linsert_lpos_and_srandmember() {
    let mut h = H::new();
    h.check(&[
        ("RPUSH l a b c b d b", ":6\r\n"),
        ("LINSERT l BEFORE c X", ":7\r\n"),
        ("LINSERT l after d Y", ":8\r\n"),
        ("LINSERT l before zz Q", ":-1\r\n"),
        ("LINSERT nope before a Q", ":0\r\n"),
        ("LINSERT l middle a Q", SYNTAX),
        ("LRANGE l 0 -1", "*8\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nX\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\nd\r\n$1\r\nY\r\n$1\r\nb\r\n"),
        ("LPOS l b", ":1\r\n"),
        ("LPOS l b RANK 2", ":4\r\n"),
        ("LPOS l b RANK -1", ":7\r\n"),
        ("LPOS l b COUNT 0", "*3\r\n:1\r\n:4\r\n:7\r\n"),
        ("LPOS l b COUNT 2 RANK -1", "*2\r\n:7\r\n:4\r\n"),
        ("LPOS l b MAXLEN 3 COUNT 0", "*1\r\n:1\r\n"),
        ("LPOS l zz", NIL),
        ("LPOS l zz COUNT 1", "*0\r\n"),
        ("LPOS l b RANK 0", "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list\r\n"),
        ("LPOS l b COUNT -1", "-ERR COUNT can't be negative\r\n"),
        ("LPOS l b RANK", SYNTAX),
        ("SADD s a b c", ":3\r\n"),
        ("SRANDMEMBER nope", NIL),
        ("SRANDMEMBER nope 3", "*0\r\n"),
        ("SRANDMEMBER s -1000001", "-ERR value is out of range (at most 1000000 repeated members per reply)\r\n"),
        ("SCARD s", ":3\r\n"),
    ]);
    // Distinct members with a positive count, all of them past the size.
    let mut all = bulks(&h.q("SRANDMEMBER s 10"));
    all.sort();
    assert_eq!(all, ["a", "b", "c"]);
    let two = bulks(&h.q("SRANDMEMBER s 2"));
    assert_eq!(two.len(), 2);
    assert_ne!(two[0], two[1]);
    // Repeats with a negative count: every one a member.
    let many = bulks(&h.q("SRANDMEMBER s -50"));
    assert_eq!(many.len(), 50);
    assert!(many.iter().all(|m| ["a", "b", "c"].contains(&m.as_str())));
    // Over many draws, every member comes up (random, not fixed).
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        seen.insert(h.q("SRANDMEMBER s"));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// LMOVE and SMOVE between two keys from four threads at once, both ways,
/// while a fifth checks under both keys' locks that nothing is ever
/// missing or doubled: the moves are atomic, and the shard locks taken in
/// order never deadlock (the test ends).
#[test]
fn multi_key_moves_are_atomic_across_threads() {
    let store = Arc::new(Store::new());
    let mut s = Session::new();
    let mut out = Vec::new();
    for i in 0..100 {
        let m = format!("m{i}");
        execute(&store, &mut s, &["RPUSH", "la", m.as_str()], &mut out);
        execute(&store, &mut s, &["SADD", "sa", m.as_str()], &mut out);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let movers: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut s = Session::new();
                let mut out = Vec::new();
                let (from, to) = if t % 2 == 0 { ("a", "b") } else { ("b", "a") };
                for i in 0..5_000 {
                    out.clear();
                    let (lf, lt) = (format!("l{from}"), format!("l{to}"));
                    execute(
                        &store,
                        &mut s,
                        &["LMOVE", &lf, &lt, "LEFT", "RIGHT"],
                        &mut out,
                    );
                    let m = format!("m{}", i % 100);
                    let (sf, st) = (format!("s{from}"), format!("s{to}"));
                    execute(&store, &mut s, &["SMOVE", &sf, &st, &m], &mut out);
                }
            })
        })
        .collect();
    let checker = {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut checks = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || checks == 0 {
                store.with_keys(&[b"la", b"lb", b"sa", b"sb"], |l| {
                    let lists: usize = [&b"la"[..], b"lb"]
                        .iter()
                        .map(|k| l.slot(k).list().unwrap().map_or(0, |x| x.len()))
                        .sum();
                    let sets: usize = [&b"sa"[..], b"sb"]
                        .iter()
                        .map(|k| l.slot(k).set_members().unwrap().map_or(0, |x| x.len()))
                        .sum();
                    assert_eq!((lists, sets), (100, 100));
                });
                checks += 1;
            }
            checks
        })
    };
    for m in movers {
        m.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(checker.join().unwrap() > 0);
}

#[test]
fn multi_exec_discard_and_queueing_errors() {
    let mut h = H::new();
    h.check(&[
        ("EXEC", "-ERR EXEC without MULTI\r\n"),
        ("DISCARD", "-ERR DISCARD without MULTI\r\n"),
        ("MULTI", OK_),
        ("MULTI", "-ERR MULTI calls can not be nested\r\n"),
        ("SET a 1", "+QUEUED\r\n"),
        ("INCR a", "+QUEUED\r\n"),
        ("LPUSH a x", "+QUEUED\r\n"),
        ("GET a", "+QUEUED\r\n"),
        // Nothing ran yet.
        ("EXEC", "*4\r\n+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\n2\r\n"),
        ("MULTI", OK_),
        ("INCR a", "+QUEUED\r\n"),
        ("DISCARD", OK_),
        ("GET a", "$1\r\n2\r\n"),
        ("MULTI", OK_),
        ("INCR a", "+QUEUED\r\n"),
        ("NOSUCH x", "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"),
        ("GET", &arity("get")),
        ("WATCH a", "-ERR WATCH inside MULTI is not allowed\r\n"),
        ("EXEC", "-EXECABORT Transaction discarded because of previous errors.\r\n"),
        ("GET a", "$1\r\n2\r\n"),
        ("MULTI", OK_),
        ("EXEC", "*0\r\n"),
    ]);
}

#[test]
fn watch_aborts_exec_only_when_a_watched_key_changes() {
    let store = Store::with_manual_clock(T0);
    let mut a = Session::with_id(1);
    let mut b = Session::with_id(2);
    let run = |s: &mut Session, line: &str| {
        let args = split_inline_args(line.as_bytes()).unwrap();
        let mut out = Vec::new();
        execute(&store, s, &args, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    run(&mut a, "SET k 1");
    // Untouched: EXEC runs.
    assert_eq!(run(&mut a, "WATCH k other"), OK_);
    run(&mut b, "SET unrelated 1");
    run(&mut b, "GET k");
    run(&mut a, "MULTI");
    run(&mut a, "INCR k");
    assert_eq!(run(&mut a, "EXEC"), "*1\r\n:2\r\n");
    // Touched by another client between WATCH and EXEC: nil, nothing runs.
    run(&mut a, "WATCH k");
    assert_eq!(run(&mut b, "SET k 10"), OK_);
    run(&mut a, "MULTI");
    run(&mut a, "INCR k");
    assert_eq!(run(&mut a, "EXEC"), "*-1\r\n");
    assert_eq!(run(&mut a, "GET k"), "$2\r\n10\r\n");
    // EXEC ended the watch: the next transaction is not affected by it.
    run(&mut b, "SET k 11");
    run(&mut a, "MULTI");
    run(&mut a, "INCR k");
    assert_eq!(run(&mut a, "EXEC"), "*1\r\n:12\r\n");
    // A watched key that did not exist, then created; a list changed; a
    // flush; UNWATCH: each as Redis.
    run(&mut a, "WATCH fresh");
    run(&mut b, "SET fresh 1");
    run(&mut a, "MULTI");
    assert_eq!(run(&mut a, "EXEC"), "*-1\r\n");
    run(&mut b, "RPUSH l a");
    run(&mut a, "WATCH l");
    run(&mut b, "LPOP l");
    run(&mut a, "MULTI");
    assert_eq!(run(&mut a, "EXEC"), "*-1\r\n");
    run(&mut a, "WATCH k");
    run(&mut b, "FLUSHALL");
    run(&mut a, "MULTI");
    assert_eq!(run(&mut a, "EXEC"), "*-1\r\n");
    run(&mut a, "WATCH k");
    assert_eq!(run(&mut a, "UNWATCH"), OK_);
    run(&mut b, "SET k 5");
    run(&mut a, "MULTI");
    run(&mut a, "GET k");
    assert_eq!(run(&mut a, "EXEC"), "*1\r\n$1\r\n5\r\n");
    // DISCARD ends the watch too.
    run(&mut a, "WATCH k");
    run(&mut a, "MULTI");
    run(&mut a, "DISCARD");
    run(&mut b, "SET k 6");
    run(&mut a, "MULTI");
    run(&mut a, "GET k");
    assert_eq!(run(&mut a, "EXEC"), "*1\r\n$1\r\n6\r\n");
}

/// Transactions from two threads INCR two keys together while a third
/// reads both with MGET: it never sees one incremented without the other.
#[test]
fn exec_is_atomic_with_respect_to_other_clients() {
    let store = Arc::new(Store::new());
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut s = Session::with_id(10 + t);
                let mut out = Vec::new();
                for _ in 0..2_000 {
                    for cmd in [&["MULTI"][..], &["INCR", "x"], &["INCR", "y"], &["EXEC"]] {
                        out.clear();
                        execute(&store, &mut s, cmd, &mut out);
                    }
                    assert!(
                        out.starts_with(b"*2\r\n"),
                        "{}",
                        String::from_utf8_lossy(&out)
                    );
                }
            })
        })
        .collect();
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut s = Session::with_id(99);
            let mut out = Vec::new();
            for _ in 0..5_000 {
                out.clear();
                execute(&store, &mut s, &["MGET", "x", "y"], &mut out);
                let r = String::from_utf8_lossy(&out).into_owned();
                let vals = bulks(&r);
                if vals.len() == 2 {
                    assert_eq!(vals[0], vals[1], "{r}");
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    assert_eq!(store.get(b"x"), Some(b"4000".to_vec()));
    assert_eq!(store.get(b"y"), Some(b"4000".to_vec()));
}

#[test]
fn sorted_sets_add_score_rank_range_and_pop() {
    let mut h = H::new();
    h.check(&[
        ("ZADD z 1 a 2 b 3 c", ":3\r\n"),
        ("ZADD z 1.5 a 4 d", ":1\r\n"),
        ("ZADD z CH 1.5 a 5 d 6 e", ":2\r\n"),
        ("TYPE z", "+zset\r\n"),
        ("ZCARD z", ":5\r\n"),
        ("ZSCORE z a", "$3\r\n1.5\r\n"),
        ("ZSCORE z nope", NIL),
        ("ZMSCORE z a nope e", "*3\r\n$3\r\n1.5\r\n$-1\r\n$1\r\n6\r\n"),
        ("ZRANK z a", ":0\r\n"),
        ("ZRANK z e", ":4\r\n"),
        ("ZREVRANK z e", ":0\r\n"),
        ("ZRANK z nope", NIL),
        ("ZRANGE z 0 -1", "*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n"),
        ("ZRANGE z 1 2 WITHSCORES", "*4\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n"),
        ("ZRANGE z 0 1 REV", "*2\r\n$1\r\ne\r\n$1\r\nd\r\n"),
        ("ZREVRANGE z 0 0 WITHSCORES", "*2\r\n$1\r\ne\r\n$1\r\n6\r\n"),
        ("ZRANGE z (1.5 3 BYSCORE", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("ZRANGE z +inf -inf BYSCORE REV LIMIT 1 2", "*2\r\n$1\r\nd\r\n$1\r\nc\r\n"),
        ("ZRANGEBYSCORE z -inf 2 WITHSCORES", "*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$1\r\n2\r\n"),
        ("ZRANGEBYSCORE z 2 +inf LIMIT 1 1", "*1\r\n$1\r\nc\r\n"),
        ("ZREVRANGEBYSCORE z 5 (3", "*1\r\n$1\r\nd\r\n"),
        ("ZRANGE z 0 1 LIMIT 0 1", "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n"),
        ("ZRANGEBYSCORE z x 1", "-ERR min or max is not a float\r\n"),
        ("ZCOUNT z 2 5", ":3\r\n"),
        ("ZCOUNT z (2 (5", ":1\r\n"),
        ("ZCOUNT nope 0 1", ":0\r\n"),
        ("ZINCRBY z 10 a", "$4\r\n11.5\r\n"),
        ("ZINCRBY z 1 new", "$1\r\n1\r\n"),
        ("ZADD z INCR 1 new", "$1\r\n2\r\n"),
        ("ZADD z NX INCR 1 new", NIL),
        ("ZADD z XX 9 zz", ":0\r\n"),
        ("ZADD z GT 1 e", ":0\r\n"),
        ("ZADD z GT CH 7 e", ":1\r\n"),
        ("ZADD z LT CH 8 e", ":0\r\n"),
        ("ZADD z NX XX 1 a", "-ERR XX and NX options at the same time are not compatible\r\n"),
        ("ZADD z NX GT 1 a", "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n"),
        ("ZADD z INCR 1 a 2 b", "-ERR INCR option supports a single increment-element pair\r\n"),
        ("ZADD z x a", "-ERR value is not a valid float\r\n"),
        ("ZADD z 1 a 2", SYNTAX),
        ("ZADD inf +inf top -inf bottom", ":2\r\n"),
        ("ZRANGE inf 0 -1 WITHSCORES", "*4\r\n$6\r\nbottom\r\n$4\r\n-inf\r\n$3\r\ntop\r\n$3\r\ninf\r\n"),
        ("ZINCRBY inf -inf top", "-ERR resulting score is not a number (NaN)\r\n"),
        ("ZPOPMIN z", "*2\r\n$1\r\nb\r\n$1\r\n2\r\n"),
        ("ZPOPMAX z 2", "*4\r\n$1\r\na\r\n$4\r\n11.5\r\n$1\r\ne\r\n$1\r\n7\r\n"),
        ("ZPOPMIN nope", "*0\r\n"),
        ("ZPOPMIN z -1", "-ERR value is out of range, must be positive\r\n"),
        ("ZREM z c nope", ":1\r\n"),
        ("ZREMRANGEBYSCORE z -inf 4", ":1\r\n"),
        ("ZREMRANGEBYRANK z 0 -1", ":1\r\n"),
        ("EXISTS z", ":0\r\n"),
        ("SET s v", OK_),
        ("ZADD s 1 a", WRONGTYPE),
        ("ZRANGE s 0 -1", WRONGTYPE),
        ("ZSCORE s a", WRONGTYPE),
    ]);
}

#[test]
fn scores_print_as_the_shortest_text_that_reads_back() {
    assert_eq!(zsets::fmt_score(1.0), "1");
    assert_eq!(zsets::fmt_score(-2.5), "-2.5");
    assert_eq!(zsets::fmt_score(0.1), "0.1");
    assert_eq!(zsets::fmt_score(1e20), "1e+20");
    assert_eq!(zsets::fmt_score(1.5e-7), "1.5e-07");
    assert_eq!(zsets::fmt_score(f64::INFINITY), "inf");
    assert_eq!(zsets::fmt_score(0.0), "0");
}

/// Walk a SCAN over 10,000 keys while keys are added and deleted between
/// steps: every key present for the whole walk comes back at least once,
/// MATCH and TYPE filter, and the walk ends with cursor 0.
#[test]
fn scan_returns_every_stable_key_at_least_once() {
    let store = Store::new();
    let mut s = Session::new();
    let mut out = Vec::new();
    for i in 0..10_000 {
        out.clear();
        execute(&store, &mut s, &["SET", &format!("key:{i}"), "v"], &mut out);
    }
    execute(&store, &mut s, &["RPUSH", "alist", "x"], &mut out);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut steps = 0;
    loop {
        out.clear();
        execute(&store, &mut s, &["SCAN", &cursor, "COUNT", "50"], &mut out);
        let reply = String::from_utf8(out.clone()).unwrap();
        let mut lines = reply.split("\r\n");
        assert_eq!(lines.next(), Some("*2"));
        lines.next(); // $len of the cursor
        cursor = lines.next().unwrap().to_string();
        for l in lines
            .skip(1)
            .filter(|l| !l.starts_with('$') && !l.is_empty())
        {
            seen.insert(l.to_string());
        }
        // Churn between steps: new keys and deletions of others.
        out.clear();
        execute(
            &store,
            &mut s,
            &["SET", &format!("new:{steps}"), "v"],
            &mut out,
        );
        execute(
            &store,
            &mut s,
            &["DEL", &format!("new:{}", steps / 2)],
            &mut out,
        );
        steps += 1;
        assert!(steps < 100_000, "the walk never ended");
        if cursor == "0" {
            break;
        }
    }
    for i in 0..10_000 {
        assert!(seen.contains(&format!("key:{i}")), "key:{i} missed");
    }
    assert!(seen.contains("alist"));
    // MATCH and TYPE.
    let mut h = H {
        store,
        session: Session::with_id(1),
    };
    let mut listed = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let r = h.q(&format!("SCAN {cursor} TYPE list COUNT 1000"));
        let parts: Vec<&str> = r.split("\r\n").collect();
        cursor = parts[2].to_string();
        listed.extend(bulks(&parts[3..].join("\r\n")));
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(listed, ["alist"]);
    let r = h.q("SCAN 0 MATCH key:1234 COUNT 100000");
    assert!(r.ends_with("*1\r\n$8\r\nkey:1234\r\n"), "{r}");
    h.check(&[
        ("SCAN x", "-ERR invalid cursor\r\n"),
        ("SCAN 0 COUNT 0", SYNTAX),
        ("SCAN 0 MATCH", SYNTAX),
    ]);
}

#[test]
fn collection_scans_and_randomkey() {
    let mut h = H::new();
    h.check(&[
        ("RANDOMKEY", NIL),
        ("SADD s a", ":1\r\n"),
        ("SSCAN s 0", "*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n"),
        ("HSET h f v", ":1\r\n"),
        (
            "HSCAN h 0 MATCH f*",
            "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ),
        ("HSCAN h 0 MATCH z*", "*2\r\n$1\r\n0\r\n*0\r\n"),
        ("ZADD z 1.5 m", ":1\r\n"),
        (
            "ZSCAN z 0",
            "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n",
        ),
        ("SSCAN nope 0", "*2\r\n$1\r\n0\r\n*0\r\n"),
        ("SSCAN h 0", WRONGTYPE),
        ("ZSCAN z x", "-ERR invalid cursor\r\n"),
    ]);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        seen.insert(h.q("RANDOMKEY"));
    }
    let mut seen: Vec<String> = seen.into_iter().collect();
    seen.sort();
    assert_eq!(seen, ["$1\r\nh\r\n", "$1\r\ns\r\n", "$1\r\nz\r\n"]);
}

#[test]
fn zunionstore_zinterstore_hincrbyfloat_hrandfield() {
    let mut h = H::new();
    h.check(&[
        ("ZADD a 1 x 2 y", ":2\r\n"),
        ("ZADD b 10 y 20 z", ":2\r\n"),
        ("SADD s x", ":1\r\n"),
        ("ZUNIONSTORE u 2 a b", ":3\r\n"),
        (
            "ZRANGE u 0 -1 WITHSCORES",
            "*6\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nz\r\n$2\r\n20\r\n",
        ),
        ("ZINTERSTORE i 2 a b WEIGHTS 2 1", ":1\r\n"),
        ("ZSCORE i y", "$2\r\n14\r\n"),
        ("ZINTERSTORE i 2 a b AGGREGATE MAX", ":1\r\n"),
        ("ZSCORE i y", "$2\r\n10\r\n"),
        ("ZUNIONSTORE u 2 a s AGGREGATE MIN", ":2\r\n"),
        ("ZSCORE u x", "$1\r\n1\r\n"),
        ("ZINTERSTORE i 2 a nope", ":0\r\n"),
        ("EXISTS i", ":0\r\n"),
        ("SET str v", OK_),
        ("ZUNIONSTORE u 2 a str", WRONGTYPE),
        (
            "ZUNIONSTORE u 0 a",
            "-ERR at least 1 input key is needed for 'zunionstore' command\r\n",
        ),
        (
            "ZUNION 2 a b WITHSCORES",
            "*6\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nz\r\n$2\r\n20\r\n",
        ),
        ("ZINTER 2 a b", "*1\r\n$1\r\ny\r\n"),
        (
            "ZINTER 2 a b AGGREGATE MIN WITHSCORES",
            "*2\r\n$1\r\ny\r\n$1\r\n2\r\n",
        ),
        ("ZUNIONSTORE u 1 a WITHSCORES", SYNTAX),
        ("ZUNIONSTORE u 3 a b", SYNTAX),
        (
            "ZUNIONSTORE u 1 a WEIGHTS x",
            "-ERR weight value is not a float\r\n",
        ),
        ("ZUNIONSTORE u 1 a AGGREGATE AVG", SYNTAX),
        ("HSET h f 10.5", ":1\r\n"),
        ("HINCRBYFLOAT h f 0.1", "$4\r\n10.6\r\n"),
        ("HINCRBYFLOAT h new 2", "$1\r\n2\r\n"),
        ("HINCRBYFLOAT h f x", "-ERR value is not a valid float\r\n"),
        ("HSET h s abc", ":1\r\n"),
        ("HINCRBYFLOAT h s 1", "-ERR hash value is not a float\r\n"),
        (
            "HINCRBYFLOAT fresh f x",
            "-ERR value is not a valid float\r\n",
        ),
    ]);
    h.check(&[
        ("EXISTS fresh", ":0\r\n"),
        ("HRANDFIELD nope", NIL),
        ("HRANDFIELD nope 2", "*0\r\n"),
        ("HRANDFIELD h 1 NOPE", SYNTAX),
    ]);
    let all = bulks(&h.q("HRANDFIELD h 10 WITHVALUES"));
    assert_eq!(all.len(), 6, "{all:?}");
    let mut fields: Vec<&String> = all.iter().step_by(2).collect();
    fields.sort();
    assert_eq!(fields, ["f", "new", "s"]);
    let rep = bulks(&h.q("HRANDFIELD h -5"));
    assert_eq!(rep.len(), 5);
    assert!(rep.iter().all(|f| ["f", "new", "s"].contains(&f.as_str())));
    h.check(&[
        ("HINCRBYFLOAT h f +inf", "-ERR value is NaN or Infinity\r\n"),
        ("ZRANDMEMBER nope", NIL),
        ("ZRANDMEMBER nope 3", "*0\r\n"),
        ("ZRANDMEMBER h", WRONGTYPE),
        ("ZADD zr 1.5 a 2 b", ":2\r\n"),
        ("ZRANDMEMBER zr 1 WITHVALUES", SYNTAX),
        ("ZRANDMEMBER zr 0", "*0\r\n"),
    ]);
    let all = bulks(&h.q("ZRANDMEMBER zr 5 WITHSCORES"));
    let mut pairs: Vec<(String, String)> = all
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [("a".into(), "1.5".into()), ("b".into(), "2".into())]
    );
    assert_eq!(bulks(&h.q("ZRANDMEMBER zr -7")).len(), 7);
}

#[test]
fn config_set_takes_encoding_thresholds_and_object_names_the_representation() {
    let mut h = H::new();
    h.check(&[
        // Thresholds are process-wide: set to their defaults, so that tests
        // running beside this one keep their encodings.
        (
            "CONFIG SET list-max-listpack-size 4 zset-max-listpack-entries 128",
            OK_,
        ),
        (
            "CONFIG GET zset-max-listpack-entries",
            "*2\r\n$25\r\nzset-max-listpack-entries\r\n$3\r\n128\r\n",
        ),
        (
            "CONFIG GET list-max-listpack-size",
            "*2\r\n$22\r\nlist-max-listpack-size\r\n$1\r\n4\r\n",
        ),
        ("CONFIG SET save \"\"", OK_),
        (
            "CONFIG SET save 900",
            "-ERR CONFIG SET failed (possibly related to argument 'save') - evnet keeps no snapshots; only \"\" is accepted\r\n",
        ),
        (
            "CONFIG SET maxmemory bla",
            "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n",
        ),
        (
            "CONFIG SET nope 1",
            "-ERR Unknown option or number of arguments for CONFIG SET - 'nope'\r\n",
        ),
        ("CONFIG SET x", &arity("config|set")),
        ("SET s 1", OK_),
        ("SET big", &arity("set")),
        ("RPUSH l a", ":1\r\n"),
        ("HSET h f v", ":1\r\n"),
        ("SADD st m", ":1\r\n"),
        ("SADD si 1 2 3", ":3\r\n"),
        ("ZADD z 1 m", ":1\r\n"),
        ("OBJECT ENCODING s", "$6\r\nembstr\r\n"),
        ("OBJECT ENCODING l", "$9\r\nquicklist\r\n"),
        ("OBJECT ENCODING h", "$8\r\nlistpack\r\n"),
        ("OBJECT ENCODING st", "$9\r\nhashtable\r\n"),
        ("OBJECT ENCODING si", "$6\r\nintset\r\n"),
        ("OBJECT ENCODING z", "$8\r\nlistpack\r\n"),
        ("OBJECT ENCODING nope", NIL),
        ("OBJECT REFCOUNT s", ":1\r\n"),
        ("SADD s2 a", ":1\r\n"),
        (
            "SINTERCARD 1 s2 LIMIT a",
            "-ERR LIMIT can't be negative\r\n",
        ),
    ]);
    // Past the thresholds: a long value, a 129th member.
    let long = "x".repeat(65);
    h.check(&[
        (&format!("HSET h f2 {long}"), ":1\r\n"),
        ("OBJECT ENCODING h", "$9\r\nhashtable\r\n"),
        ("HGET h f", "$1\r\nv\r\n"),
        (&format!("SET s {}", "y".repeat(5000)), OK_),
        ("OBJECT ENCODING s", "$3\r\nraw\r\n"),
        ("SADD si x", ":1\r\n"),
        ("OBJECT ENCODING si", "$9\r\nhashtable\r\n"),
        ("SISMEMBER si 2", ":1\r\n"),
    ]);
    for i in 0..128 {
        h.q(&format!("ZADD z {i} m{i}"));
    }
    h.check(&[
        ("ZCARD z", ":129\r\n"),
        ("OBJECT ENCODING z", "$8\r\nskiplist\r\n"),
        ("ZSCORE z m", "$1\r\n1\r\n"),
    ]);
}

#[test]
fn lexicographic_ranges() {
    let mut h = H::new();
    h.check(&[
        ("ZADD z 0 a 0 b 0 c 0 d 0 e", ":5\r\n"),
        (
            "ZRANGEBYLEX z - +",
            "*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n",
        ),
        ("ZRANGEBYLEX z [b (d", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        (
            "ZRANGEBYLEX z - + LIMIT 1 2",
            "*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
        ),
        (
            "ZREVRANGEBYLEX z + [c",
            "*3\r\n$1\r\ne\r\n$1\r\nd\r\n$1\r\nc\r\n",
        ),
        ("ZRANGE z (a [c BYLEX", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("ZRANGE z [c - BYLEX REV LIMIT 0 1", "*1\r\n$1\r\nc\r\n"),
        (
            "ZRANGE z - + BYLEX WITHSCORES",
            "-ERR syntax error, WITHSCORES not supported in combination with BYLEX\r\n",
        ),
        ("ZLEXCOUNT z [b +", ":4\r\n"),
        (
            "ZLEXCOUNT z a +",
            "-ERR min or max not valid string range item\r\n",
        ),
        ("ZRANGEBYLEX z - + WITHSCORES", SYNTAX),
        ("ZREMRANGEBYLEX z - (c", ":2\r\n"),
        (
            "ZRANGEBYLEX z - +",
            "*3\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n",
        ),
        ("ZLEXCOUNT nope - +", ":0\r\n"),
    ]);
}

#[test]
fn zdiff_zintercard_and_zrangestore() {
    let mut h = H::new();
    h.check(&[
        ("ZADD a 1 x 2 y 3 z", ":3\r\n"),
        ("ZADD b 5 y", ":1\r\n"),
        ("SADD s z", ":1\r\n"),
        (
            "ZDIFF 2 a b WITHSCORES",
            "*4\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\nz\r\n$1\r\n3\r\n",
        ),
        ("ZDIFF 3 a b s", "*1\r\n$1\r\nx\r\n"),
        ("ZDIFF 1 nope", "*0\r\n"),
        ("ZDIFFSTORE d 2 a b", ":2\r\n"),
        (
            "ZRANGE d 0 -1 WITHSCORES",
            "*4\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\nz\r\n$1\r\n3\r\n",
        ),
        ("ZDIFFSTORE d 2 a a", ":0\r\n"),
        ("EXISTS d", ":0\r\n"),
        // A plain set as the first input: its members score 1.
        ("ZDIFFSTORE d 2 s b", ":1\r\n"),
        ("ZSCORE d z", "$1\r\n1\r\n"),
        ("ZDIFF 2 a b WEIGHTS 1 2", SYNTAX),
        ("ZDIFFSTORE d 2 a b WITHSCORES", SYNTAX),
        (
            "ZDIFF 0 a",
            "-ERR at least 1 input key is needed for 'zdiff' command\r\n",
        ),
        ("ZDIFF 3 a b", SYNTAX),
        ("ZINTERCARD 2 a b", ":1\r\n"),
        ("ZINTERCARD 2 a s", ":1\r\n"),
        ("ZINTERCARD 1 a LIMIT 2", ":2\r\n"),
        ("ZINTERCARD 1 a LIMIT 0", ":3\r\n"),
        ("ZINTERCARD 2 a nope", ":0\r\n"),
        ("ZINTERCARD 1 a LIMIT -1", "-ERR LIMIT can't be negative\r\n"),
        ("ZINTERCARD 1 a LIMIT x", "-ERR LIMIT can't be negative\r\n"),
        ("ZINTERCARD 1 a a", SYNTAX),
        ("ZINTERCARD 1 a LIMIT", SYNTAX),
        ("ZINTERCARD 1 a WITHSCORES", SYNTAX),
        (
            "ZINTERCARD 0 a",
            "-ERR at least 1 input key is needed for 'zintercard' command\r\n",
        ),
        ("ZINTERCARD x a", NOT_INT),
        ("ZINTERCARD 1", &arity("zintercard")),
        ("SET str v", OK_),
        ("ZINTERCARD 2 a str", WRONGTYPE),
        ("ZDIFF 2 str a", WRONGTYPE),
        // As in Redis, the keys' types are checked before the options.
        ("ZUNION 2 a str WEIGHTS x y", WRONGTYPE),
        ("ZRANGESTORE r a 0 1", ":2\r\n"),
        (
            "ZRANGE r 0 -1 WITHSCORES",
            "*4\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$1\r\n2\r\n",
        ),
        ("ZRANGESTORE r a (1 +inf BYSCORE LIMIT 1 1", ":1\r\n"),
        ("ZRANGE r 0 -1", "*1\r\n$1\r\nz\r\n"),
        ("ZRANGESTORE r a +inf -inf BYSCORE REV LIMIT 0 2", ":2\r\n"),
        ("ZRANGE r 0 -1", "*2\r\n$1\r\ny\r\n$1\r\nz\r\n"),
        ("ZRANGESTORE r a -1 -1 REV", ":1\r\n"),
        ("ZRANGE r 0 -1", "*1\r\n$1\r\nx\r\n"),
        ("ZRANGESTORE r a 5 10", ":0\r\n"),
        ("EXISTS r", ":0\r\n"),
        ("ZRANGESTORE r nope 0 -1", ":0\r\n"),
        // The destination is replaced whatever it held.
        ("ZRANGESTORE str a 0 0", ":1\r\n"),
        ("TYPE str", "+zset\r\n"),
        ("ZADD l 0 a 0 b 0 c", ":3\r\n"),
        ("ZRANGESTORE r l [b + BYLEX", ":2\r\n"),
        ("ZRANGE r 0 -1", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("ZRANGESTORE r l + - BYLEX REV LIMIT 0 1", ":1\r\n"),
        ("ZRANGE r 0 -1", "*1\r\n$1\r\nc\r\n"),
        ("ZRANGESTORE r a 0 1 WITHSCORES", SYNTAX),
        ("ZRANGESTORE r a 0 1 BYLEX BYSCORE", SYNTAX),
        ("ZRANGESTORE r a 0 1 REV REV", SYNTAX),
        (
            "ZRANGESTORE r a 0 1 LIMIT 0 1",
            "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n",
        ),
        ("ZRANGESTORE r a x 1", NOT_INT),
        ("ZRANGESTORE r a x 1 BYSCORE", "-ERR min or max is not a float\r\n"),
        (
            "ZRANGESTORE r l a c BYLEX",
            "-ERR min or max not valid string range item\r\n",
        ),
        ("ZRANGESTORE r s 0 1", WRONGTYPE),
        ("ZRANGESTORE r a 0", &arity("zrangestore")),
    ]);
}

impl H {
    /// Run `line`, which must block (no reply).
    fn blocks(&mut self, line: &str) {
        let args = split_inline_args(line.as_bytes()).expect("test line quoting");
        assert_eq!(self.exec(&args), (String::new(), Outcome::Block), "{line}");
    }

    /// Run `line` as another client.
    fn other(&self, line: &str) -> String {
        let args = split_inline_args(line.as_bytes()).expect("test line quoting");
        let mut out = Vec::new();
        execute(&self.store, &mut Session::with_id(8), &args, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Retry the blocked command: its reply, and whether it is still
    /// blocked.
    fn retry(&mut self) -> (String, Outcome) {
        let mut out = Vec::new();
        let o = retry_blocked(&self.store, &mut self.session, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), o)
    }
}

#[test]
fn zmpop_and_blocking_zset_pops() {
    let mut h = H::new();
    h.check(&[
        ("ZADD z 1 a 2 b 3 c", ":3\r\n"),
        (
            "ZMPOP 1 z MIN",
            "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n",
        ),
        (
            "ZMPOP 2 nope z MAX COUNT 5",
            "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
        ),
        ("EXISTS z", ":0\r\n"),
        ("ZMPOP 1 z MIN", "*-1\r\n"),
        ("ZMPOP 0 z MIN", "-ERR numkeys should be greater than 0\r\n"),
        ("ZMPOP x z MIN", "-ERR numkeys should be greater than 0\r\n"),
        ("ZMPOP 1 z", &arity("zmpop")),
        ("ZMPOP 1 z bad", SYNTAX),
        ("ZMPOP 2 z MIN", SYNTAX),
        ("ZMPOP 1 z MIN MAX", SYNTAX),
        ("ZMPOP 1 z MIN COUNT", SYNTAX),
        (
            "ZMPOP 1 z MIN COUNT 0",
            "-ERR count should be greater than 0\r\n",
        ),
        (
            "ZMPOP 1 z MIN COUNT x",
            "-ERR count should be greater than 0\r\n",
        ),
        ("ZMPOP 1 z MIN COUNT 1 COUNT 2", SYNTAX),
        ("SET str v", OK_),
        ("ZMPOP 2 nope str MIN", WRONGTYPE),
        ("ZADD y 1 m 2 n", ":2\r\n"),
        ("BZPOPMIN str y 0", WRONGTYPE),
        (
            "BZPOPMAX nope y 0",
            "*3\r\n$1\r\ny\r\n$1\r\nn\r\n$1\r\n2\r\n",
        ),
        (
            "BZMPOP 0 1 y MIN COUNT 3",
            "*2\r\n$1\r\ny\r\n*1\r\n*2\r\n$1\r\nm\r\n$1\r\n1\r\n",
        ),
        ("BZPOPMIN y -1", "-ERR timeout is negative\r\n"),
        (
            "BZPOPMIN y x",
            "-ERR timeout is not a float or out of range\r\n",
        ),
        ("BZPOPMIN y", &arity("bzpopmin")),
        // BZMPOP's own arguments are checked before the timeout.
        (
            "BZMPOP x 1 y MIN COUNT 0",
            "-ERR count should be greater than 0\r\n",
        ),
        (
            "BZMPOP x 1 y MIN",
            "-ERR timeout is not a float or out of range\r\n",
        ),
        ("BZMPOP 0 1 y", &arity("bzmpop")),
        // Inside MULTI nothing waits: each answers as if timed out.
        ("MULTI", OK_),
        ("BZPOPMIN y 0", "+QUEUED\r\n"),
        ("BZMPOP 0 1 y MAX", "+QUEUED\r\n"),
        ("EXEC", "*2\r\n*-1\r\n*-1\r\n"),
    ]);
    // An empty key blocks; a ZADD by another client serves it.
    h.blocks("BZPOPMIN y 0");
    assert_eq!(h.session.blocked_keys(), Some(&[b"y".to_vec()][..]));
    assert_eq!(h.other("ZADD y 7 late"), ":1\r\n");
    assert_eq!(
        h.retry(),
        (
            "*3\r\n$1\r\ny\r\n$4\r\nlate\r\n$1\r\n7\r\n".into(),
            Outcome::Continue
        )
    );
    h.blocks("BZMPOP 0.5 2 y w MAX COUNT 2");
    assert_eq!(h.other("ZUNIONSTORE w 1 a"), ":0\r\n");
    assert_eq!(h.other("ZINCRBY w 1.5 q"), "$3\r\n1.5\r\n");
    assert_eq!(
        h.retry(),
        (
            "*2\r\n$1\r\nw\r\n*1\r\n*2\r\n$1\r\nq\r\n$3\r\n1.5\r\n".into(),
            Outcome::Continue
        )
    );
    // Data taken by someone else: blocked again; then the timeout answers.
    h.blocks("BZPOPMAX w 1");
    assert_eq!(h.retry(), (String::new(), Outcome::Block));
    let mut out = Vec::new();
    time_out_blocked(&mut h.session, &mut out);
    assert_eq!(out, b"*-1\r\n");
}

#[test]
fn lmpop_and_blmpop() {
    let mut h = H::new();
    h.check(&[
        ("RPUSH l a b c", ":3\r\n"),
        ("LMPOP 2 nope l LEFT", "*2\r\n$1\r\nl\r\n*1\r\n$1\r\na\r\n"),
        (
            "LMPOP 1 l RIGHT COUNT 10",
            "*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
        ),
        ("EXISTS l", ":0\r\n"),
        ("LMPOP 1 l LEFT", "*-1\r\n"),
        ("LMPOP 1 l MIDDLE", SYNTAX),
        (
            "LMPOP -1 l LEFT",
            "-ERR numkeys should be greater than 0\r\n",
        ),
        (
            "LMPOP 1 l LEFT COUNT -1",
            "-ERR count should be greater than 0\r\n",
        ),
        ("LMPOP 1 l", &arity("lmpop")),
        ("LPOP l 1 2", &arity("lpop")),
        ("RPOP l 1 2", &arity("rpop")),
        ("SET str v", OK_),
        ("LMPOP 2 str l LEFT", WRONGTYPE),
        ("RPUSH l x", ":1\r\n"),
        (
            "BLMPOP 0 1 l LEFT COUNT -1",
            "-ERR count should be greater than 0\r\n",
        ),
        ("BLMPOP -1 1 l LEFT", "-ERR timeout is negative\r\n"),
        (
            "BLMPOP 0 2 nope l RIGHT",
            "*2\r\n$1\r\nl\r\n*1\r\n$1\r\nx\r\n",
        ),
        ("MULTI", OK_),
        ("BLMPOP 0 1 l LEFT", "+QUEUED\r\n"),
        ("EXEC", "*1\r\n*-1\r\n"),
    ]);
    h.blocks("BLMPOP 0 2 l m RIGHT COUNT 2");
    assert_eq!(h.other("RPUSH m 1 2 3"), ":3\r\n");
    assert_eq!(
        h.retry(),
        (
            "*2\r\n$1\r\nm\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n".into(),
            Outcome::Continue
        )
    );
}

#[test]
fn setbit_getbit_bitcount_bitpos() {
    let mut h = H::new();
    h.check(&[
        ("SETBIT b 7 1", ":0\r\n"),
        ("GET b", "$1\r\n\u{1}\r\n"),
        ("SETBIT b 7 1", ":1\r\n"),
        ("GETBIT b 7", ":1\r\n"),
        ("GETBIT b 6", ":0\r\n"),
        ("GETBIT b 100", ":0\r\n"),
        ("GETBIT nope 0", ":0\r\n"),
        ("SETBIT b 7 0", ":1\r\n"),
        ("SETBIT b 23 1", ":0\r\n"),
        ("STRLEN b", ":3\r\n"),
        ("SETBIT b 4294967295 0", ":0\r\n"),
        ("DEL b", ":1\r\n"),
        (
            "SETBIT b 4294967296 1",
            "-ERR bit offset is not an integer or out of range\r\n",
        ),
        (
            "SETBIT b -1 1",
            "-ERR bit offset is not an integer or out of range\r\n",
        ),
        (
            "GETBIT b x",
            "-ERR bit offset is not an integer or out of range\r\n",
        ),
        (
            "SETBIT b 0 2",
            "-ERR bit is not an integer or out of range\r\n",
        ),
        (
            "SETBIT b 0 x",
            "-ERR bit is not an integer or out of range\r\n",
        ),
        ("EXISTS b", ":0\r\n"),
        ("SET s foobar", OK_),
        ("BITCOUNT s", ":26\r\n"),
        ("BITCOUNT s 0 0", ":4\r\n"),
        ("BITCOUNT s 1 1 BYTE", ":6\r\n"),
        ("BITCOUNT s 5 30 BIT", ":17\r\n"),
        ("BITCOUNT s -2 -1", ":7\r\n"),
        ("BITCOUNT s 0 1000", ":26\r\n"),
        ("BITCOUNT s 3 1", ":0\r\n"),
        ("BITCOUNT s -1 -2 FOO", ":0\r\n"),
        ("BITCOUNT s 0 1 FOO", SYNTAX),
        ("BITCOUNT s 0", SYNTAX),
        ("BITCOUNT s x 1", NOT_INT),
        // As in Redis, a missing key answers before its arguments are read.
        ("BITCOUNT nope x", ":0\r\n"),
        ("SET p \"\\xff\\xf0\\x00\"", OK_),
        ("BITPOS p 0", ":12\r\n"),
        ("SET p \"\\x00\\xff\\xf0\"", OK_),
        ("BITPOS p 1 0", ":8\r\n"),
        ("BITPOS p 1 2", ":16\r\n"),
        ("BITPOS p 1 2 -1 BYTE", ":16\r\n"),
        ("BITPOS p 1 7 15 BIT", ":8\r\n"),
        ("BITPOS p 1 7 -3 BIT", ":8\r\n"),
        ("BITPOS p 0 8 11 BIT", ":-1\r\n"),
        ("BITPOS p 1 5 0", ":-1\r\n"),
        ("SET ones \"\\xff\\xff\"", OK_),
        ("BITPOS ones 0", ":16\r\n"),
        ("BITPOS ones 0 1", ":16\r\n"),
        ("BITPOS ones 0 0 -1", ":-1\r\n"),
        ("BITPOS ones 1 1 1 FOO", SYNTAX),
        ("BITPOS ones 1 1 x FOO", SYNTAX),
        ("BITPOS ones 1 1 x", NOT_INT),
        ("SET zero \"\\x00\"", OK_),
        ("BITPOS zero 1", ":-1\r\n"),
        ("SET empty \"\"", OK_),
        ("BITPOS empty 0", ":-1\r\n"),
        ("BITPOS nope 0", ":0\r\n"),
        ("BITPOS nope 1", ":-1\r\n"),
        ("BITPOS p 2", "-ERR The bit argument must be 1 or 0.\r\n"),
        ("BITPOS p x", NOT_INT),
        ("RPUSH l a", ":1\r\n"),
        ("SETBIT l 0 1", WRONGTYPE),
        ("GETBIT l 0", WRONGTYPE),
        ("BITCOUNT l", WRONGTYPE),
        ("BITPOS l 1", WRONGTYPE),
    ]);
}

#[test]
fn bitop_and_lcs() {
    let mut h = H::new();
    h.check(&[
        ("SET a \"\\x0f\"", OK_),
        ("SET b \"\\xf0\\x01\"", OK_),
        ("BITOP AND d a b", ":2\r\n"),
    ]);
    assert_eq!(h.store.get(b"d"), Some(vec![0x00, 0x00]));
    h.q("BITOP OR d a b");
    assert_eq!(h.store.get(b"d"), Some(vec![0xff, 0x01]));
    h.q("BITOP XOR d b a b");
    assert_eq!(h.store.get(b"d"), Some(vec![0x0f, 0x00]));
    h.check(&[("BITOP NOT d b", ":2\r\n")]);
    assert_eq!(h.store.get(b"d"), Some(vec![0x0f, 0xfe]));
    h.check(&[
        (
            "BITOP NOT d a b",
            "-ERR BITOP NOT must be called with a single source key.\r\n",
        ),
        ("BITOP FOO d a", SYNTAX),
        ("BITOP AND d", &arity("bitop")),
        ("BITOP AND d nope", ":0\r\n"),
        ("EXISTS d", ":0\r\n"),
        ("RPUSH l x", ":1\r\n"),
        ("BITOP OR d a l", WRONGTYPE),
        // The destination is replaced whatever it held.
        ("BITOP OR l a", ":1\r\n"),
        ("TYPE l", "+string\r\n"),
        ("SET k1 ohmytext", OK_),
        ("SET k2 mynewtext", OK_),
        ("LCS k1 k2", "$6\r\nmytext\r\n"),
        ("LCS k1 k2 LEN", ":6\r\n"),
        (
            "LCS k1 k2 IDX",
            "*4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n",
        ),
        (
            "LCS k1 k2 IDX MINMATCHLEN 4 WITHMATCHLEN",
            "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n",
        ),
        ("LCS k1 nope", "$0\r\n\r\n"),
        ("LCS k1 nope IDX", "*4\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n"),
        (
            "LCS k1 k2 LEN IDX",
            "-ERR If you want both the length and indexes, please just use IDX.\r\n",
        ),
        ("LCS k1 k2 FOO", SYNTAX),
        ("LCS k1 k2 MINMATCHLEN", SYNTAX),
        ("LCS k1 k2 IDX MINMATCHLEN x", NOT_INT),
        ("RPUSH list x", ":1\r\n"),
        // The types are checked before the options.
        (
            "LCS k1 list FOO",
            "-ERR The specified keys must contain string values\r\n",
        ),
        (
            "LCS list k1",
            "-ERR The specified keys must contain string values\r\n",
        ),
        ("LCS k1", &arity("lcs")),
    ]);
}

#[test]
fn sort_lists_sets_and_sorted_sets() {
    let mut h = H::new();
    h.check(&[
        ("RPUSH l 3 1 2 10", ":4\r\n"),
        ("SORT l", "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n"),
        ("SORT l DESC LIMIT 1 2", "*2\r\n$1\r\n3\r\n$1\r\n2\r\n"),
        ("SORT l ALPHA", "*4\r\n$1\r\n1\r\n$2\r\n10\r\n$1\r\n2\r\n$1\r\n3\r\n"),
        ("SORT l LIMIT 10 5", "*0\r\n"),
        ("SORT l LIMIT -5 1", "*1\r\n$1\r\n1\r\n"),
        ("SORT l LIMIT 2 -1", "*2\r\n$1\r\n3\r\n$2\r\n10\r\n"),
        // BY without `*`: the list's own order (reversed by DESC).
        ("SORT l BY nosort", "*4\r\n$1\r\n3\r\n$1\r\n1\r\n$1\r\n2\r\n$2\r\n10\r\n"),
        ("SORT l BY nosort DESC LIMIT 0 2", "*2\r\n$2\r\n10\r\n$1\r\n2\r\n"),
        ("MSET w_1 30 w_2 20 w_3 10", OK_),
        ("HSET h_1 f c", ":1\r\n"),
        ("HSET h_2 f b", ":1\r\n"),
        ("HSET h_3 f a", ":1\r\n"),
        // Weights from keys; a missing one weighs 0.
        ("SORT l BY w_*", "*4\r\n$2\r\n10\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n"),
        ("SORT l BY h_*->f ALPHA LIMIT 0 3", "*3\r\n$2\r\n10\r\n$1\r\n3\r\n$1\r\n2\r\n"),
        (
            "SORT l BY w_* GET # GET h_*->f GET nope_*",
            "*12\r\n$2\r\n10\r\n$-1\r\n$-1\r\n$1\r\n3\r\n$1\r\na\r\n$-1\r\n$1\r\n2\r\n$1\r\nb\r\n$-1\r\n$1\r\n1\r\n$1\r\nc\r\n$-1\r\n",
        ),
        ("SORT l LIMIT 0 1 GET w_*", "*1\r\n$2\r\n30\r\n"),
        ("SORT l BY w_* STORE dst", ":4\r\n"),
        ("LRANGE dst 0 -1", "*4\r\n$2\r\n10\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n"),
        // STORE with GET: a missing value is stored empty.
        ("SORT l GET h_*->f STORE dst", ":4\r\n"),
        ("LRANGE dst 0 -1", "*4\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$0\r\n\r\n"),
        ("SORT nope STORE dst", ":0\r\n"),
        ("EXISTS dst", ":0\r\n"),
        ("SORT nope", "*0\r\n"),
        ("SADD s b a c", ":3\r\n"),
        ("SORT s ALPHA DESC", "*3\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n"),
        // An unordered set stored with BY nosort is stored sorted.
        ("SORT s BY nosort STORE dst", ":3\r\n"),
        ("LRANGE dst 0 -1", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        (
            "SORT s",
            "-ERR One or more scores can't be converted into double\r\n",
        ),
        ("ZADD z 1 c 2 a 3 b", ":3\r\n"),
        ("SORT z BY nosort", "*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n"),
        ("SORT z BY nosort DESC LIMIT 0 1", "*1\r\n$1\r\nb\r\n"),
        ("SORT z ALPHA", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"),
        ("SORT_RO l LIMIT 0 1", "*1\r\n$1\r\n1\r\n"),
        ("SORT_RO l STORE dst", SYNTAX),
        ("SORT l LIMIT 0", SYNTAX),
        ("SORT l LIMIT x 1", NOT_INT),
        ("SORT l FOO", SYNTAX),
        ("SET str v", OK_),
        ("SORT str", WRONGTYPE),
        ("SORT h_1", WRONGTYPE),
        ("SORT", &arity("sort")),
        ("MULTI", OK_),
        ("SORT l BY w_* GET h_*->f", "+QUEUED\r\n"),
        (
            "EXEC",
            "*1\r\n*4\r\n$-1\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        ),
    ]);
}

/// Redis's "ZADD + DEL + SET should not awake blocked client": a woken
/// blocked pop that finds its key turned into another type keeps waiting
/// (WRONGTYPE is only for the first run).
#[test]
fn a_blocked_pop_keeps_waiting_when_its_key_changed_type() {
    let mut h = H::new();
    for (cmd, push, reply) in [
        (
            "BZPOPMIN k 0",
            "ZADD k 1 bar",
            "*3\r\n$1\r\nk\r\n$3\r\nbar\r\n$1\r\n1\r\n",
        ),
        ("BLPOP k 0", "RPUSH k bar", "*2\r\n$1\r\nk\r\n$3\r\nbar\r\n"),
        (
            "BLMPOP 0 1 k LEFT",
            "RPUSH k bar",
            "*2\r\n$1\r\nk\r\n*1\r\n$3\r\nbar\r\n",
        ),
    ] {
        h.q("SET k foo");
        assert_eq!(h.q(cmd), WRONGTYPE, "first run: {cmd}");
        h.q("DEL k");
        h.blocks(cmd);
        assert_eq!(h.other("SET k foo"), OK_);
        assert_eq!(h.retry(), (String::new(), Outcome::Block), "{cmd}");
        h.other("DEL k");
        h.other(push);
        assert_eq!(h.retry(), (reply.to_string(), Outcome::Continue), "{cmd}");
        assert_eq!(h.q("EXISTS k"), ":0\r\n", "{cmd}");
    }
}
