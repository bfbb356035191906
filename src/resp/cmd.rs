//! Command execution: one decoded command in, its RESP2 reply appended to
//! the connection's output buffer.
//!
//! Replies and error texts follow Redis 7.0. Everything is binary safe.
//! Replies on the hot paths (PING, GET, SET, INCR, ...) are written straight
//! into the output buffer with no allocation besides what the store needs
//! for new keys and values.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::glob::glob_match;
use super::store::{Expiry, Kind, Slot, Store, WrongType};
use crate::codec::resp::{
    format_u64, parse_i64, write_array_header, write_bulk, write_bulk_header, write_error,
    write_error_bytes, write_int, write_null, write_null_array, write_simple, EMPTY_ARRAY, OK,
    PROTO_MAX_BULK_LEN,
};

/// Commands that are one generic body with fixed arguments: each `name =>
/// generic(args...)` becomes a handler calling `generic(cx, args, ...)`.
macro_rules! variants {
    ($($name:ident => $generic:ident($($a:expr),*);)*) => {
        $(
            pub(super) fn $name<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
                $generic(cx, args, $($a),*)
            }
        )*
    };
}

mod bits;
mod collections;
mod multikey;
mod scan;
mod sort;
mod strings;
mod zsets;
use bits::*;
use collections::*;
use multikey::*;
use scan::*;
use sort::{sort, sort_ro};
use strings::*;
use zsets::*;

/// The Redis version this server claims to be (INFO, HELLO).
pub const REDIS_VERSION: &str = "7.0.0";

/// What the connection should do after a command's reply has been queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep the connection open and go on with the next command.
    Continue,
    /// Flush the output, then close (QUIT).
    Close,
    /// A blocking command (BLPOP...) found nothing: no reply yet. Stop
    /// reading this connection's commands and wait: for a push to one of
    /// [`Session::blocked_keys`], after which the pushing client serves it
    /// ([`serve_ready`] runs [`Session::blocked_args`] and hands over the
    /// reply; [`end_blocked`] then clears the session), or for
    /// [`Session::blocked_timeout`] to pass (then [`time_out_blocked`]).
    /// [`retry_blocked`] runs the command again on the session itself.
    Block,
}

/// A blocking command waiting for data: the command, its keys and how long
/// it may wait (`None`: for ever).
#[derive(Debug, Clone)]
struct Blocked {
    args: Vec<Vec<u8>>,
    keys: Vec<Vec<u8>>,
    timeout: Option<std::time::Duration>,
}

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Per-connection state of a RESP client: its id, the name and library
/// info it set (CLIENT SETNAME / SETINFO, HELLO) and the addresses shown by
/// CLIENT INFO. One per connection; not shared between threads.
#[derive(Debug, Clone)]
pub struct Session {
    id: u64,
    name: Option<Vec<u8>>,
    peer_addr: Option<String>,
    local_addr: Option<String>,
    fd: i64,
    lib_name: Option<Vec<u8>>,
    lib_ver: Option<Vec<u8>>,
    created: Instant,
    /// Between MULTI and EXEC: the commands queued.
    tx: Option<Transaction>,
    /// The flag of the keys this client WATCHes (raised when one changes).
    watch: Option<Arc<AtomicBool>>,
    /// A blocking command waiting for data.
    blocked: Option<Blocked>,
}

/// A transaction being queued (MULTI ... EXEC).
#[derive(Debug, Clone, Default)]
struct Transaction {
    queue: Vec<Vec<Vec<u8>>>,
    /// A command was refused while queueing: EXEC aborts.
    failed: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// A session with the next process-wide client id (1, 2, 3, ...).
    pub fn new() -> Session {
        Session::with_id(NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// A session with the given client id, leaving the process-wide counter
    /// untouched: for tests and for embedders that assign ids themselves
    /// (uniqueness is then up to them).
    pub fn with_id(id: u64) -> Session {
        Session {
            id,
            name: None,
            peer_addr: None,
            local_addr: None,
            fd: -1,
            lib_name: None,
            lib_ver: None,
            created: Instant::now(),
            tx: None,
            watch: None,
            blocked: None,
        }
    }

    /// The keys a blocked command waits on ([`Outcome::Block`]).
    pub fn blocked_keys(&self) -> Option<&[Vec<u8>]> {
        self.blocked.as_ref().map(|b| b.keys.as_slice())
    }

    /// The blocking command that made this session wait, if it waits.
    pub fn blocked_args(&self) -> Option<&[Vec<u8>]> {
        self.blocked.as_ref().map(|b| b.args.as_slice())
    }

    /// How long the blocked command may wait (`None`: for ever).
    pub fn blocked_timeout(&self) -> Option<std::time::Duration> {
        self.blocked.as_ref().and_then(|b| b.timeout)
    }

    /// The client id, as CLIENT ID, CLIENT INFO and HELLO report it; fixed
    /// for the session's life.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name given by CLIENT SETNAME / HELLO SETNAME.
    pub fn name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }

    /// Peer address shown by CLIENT INFO (`ip:port`).
    pub fn set_peer_addr(&mut self, addr: impl Into<String>) {
        self.peer_addr = Some(addr.into());
    }

    /// Local address shown by CLIENT INFO (`ip:port`).
    pub fn set_local_addr(&mut self, addr: impl Into<String>) {
        self.local_addr = Some(addr.into());
    }

    /// File descriptor shown by CLIENT INFO.
    pub fn set_fd(&mut self, fd: i64) {
        self.fd = fd;
    }
}

/// Every command [`execute`] knows (lowercase), as counted by COMMAND COUNT.
pub const COMMAND_NAMES: &[&str] = &[
    "append",
    "auth",
    "bitcount",
    "bitop",
    "bitpos",
    "blmove",
    "blmpop",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzmpop",
    "bzpopmax",
    "bzpopmin",
    "client",
    "command",
    "config",
    "copy",
    "dbsize",
    "decr",
    "decrby",
    "del",
    "discard",
    "echo",
    "exec",
    "exists",
    "expire",
    "expireat",
    "expiretime",
    "flushall",
    "flushdb",
    "function",
    "get",
    "getbit",
    "getdel",
    "getex",
    "getrange",
    "getset",
    "hdel",
    "hello",
    "hexists",
    "hget",
    "hgetall",
    "hincrby",
    "hincrbyfloat",
    "hkeys",
    "hlen",
    "hmget",
    "hmset",
    "hrandfield",
    "hscan",
    "hset",
    "hsetnx",
    "hstrlen",
    "hvals",
    "incr",
    "incrby",
    "incrbyfloat",
    "info",
    "keys",
    "lcs",
    "lindex",
    "linsert",
    "llen",
    "lmove",
    "lmpop",
    "lpop",
    "lpos",
    "lpush",
    "lpushx",
    "lrange",
    "lrem",
    "lset",
    "ltrim",
    "mget",
    "mset",
    "msetnx",
    "multi",
    "object",
    "persist",
    "pexpire",
    "pexpireat",
    "pexpiretime",
    "ping",
    "psetex",
    "pttl",
    "quit",
    "randomkey",
    "rename",
    "renamenx",
    "rpop",
    "rpoplpush",
    "rpush",
    "rpushx",
    "sadd",
    "scan",
    "scard",
    "sdiff",
    "sdiffstore",
    "select",
    "set",
    "setbit",
    "setex",
    "setnx",
    "setrange",
    "sinter",
    "sintercard",
    "sinterstore",
    "sismember",
    "smembers",
    "smismember",
    "smove",
    "sort",
    "sort_ro",
    "spop",
    "srandmember",
    "srem",
    "sscan",
    "strlen",
    "sunion",
    "sunionstore",
    "time",
    "ttl",
    "type",
    "unlink",
    "unwatch",
    "watch",
    "zadd",
    "zcard",
    "zcount",
    "zdiff",
    "zdiffstore",
    "zincrby",
    "zinter",
    "zintercard",
    "zinterstore",
    "zlexcount",
    "zmpop",
    "zmscore",
    "zpopmax",
    "zpopmin",
    "zrandmember",
    "zrange",
    "zrangebylex",
    "zrangebyscore",
    "zrangestore",
    "zrank",
    "zrem",
    "zremrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zrevrange",
    "zrevrangebylex",
    "zrevrangebyscore",
    "zrevrank",
    "zscan",
    "zscore",
    "zunion",
    "zunionstore",
];

const E_SYNTAX: &str = "ERR syntax error";
const E_NOT_INT: &str = "ERR value is not an integer or out of range";
const E_OVERFLOW: &str = "ERR increment or decrement would overflow";
const E_DB_RANGE: &str = "ERR DB index is out of range";
const E_TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const E_CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";

struct Cx<'a> {
    store: &'a Store,
    session: &'a mut Session,
    out: &'a mut Vec<u8>,
    /// Where a large value goes instead of `out` ([`execute_spliced`]).
    splice: Option<&'a mut Option<Arc<Vec<u8>>>>,
    close: bool,
    /// A blocking command asks to wait on these keys (set instead of a
    /// reply); inside EXEC it may not, and answers as if timed out.
    block: Option<(Vec<Vec<u8>>, Option<std::time::Duration>)>,
    may_block: bool,
    /// The command is a blocked one run again after a write to a key it
    /// waits on: a key now holding another type is passed over as empty
    /// (Redis serves a blocked client only from a key of the type it waits
    /// for) rather than answered WRONGTYPE.
    retrying: bool,
}

/// Values at least this large are sent by reference by
/// [`execute_spliced`]; smaller ones are cheaper to copy.
pub const SPLICE_AT: usize = 64 * 1024;

/// What follows a spliced value to complete its reply.
pub const SPLICE_TAIL: &[u8] = b"\r\n";

fn arg<A: AsRef<[u8]>>(args: &[A], i: usize) -> &[u8] {
    args[i].as_ref()
}

fn arity_ok(argc: usize, arity: i32) -> bool {
    if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= arity.unsigned_abs() as usize
    }
}

/// `-ERR wrong number of arguments for '<name>' command`
fn err_arity(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"-ERR wrong number of arguments for '");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"' command\r\n");
}

/// `-ERR invalid expire time in '<name>' command`
fn err_expire(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"-ERR invalid expire time in '");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"' command\r\n");
}

/// `-ERR unknown subcommand '<sub>'. Try <CONTAINER> HELP.`
fn err_subcommand(out: &mut Vec<u8>, container: &[u8], sub: &[u8]) {
    let mut msg = b"ERR unknown subcommand '".to_vec();
    msg.extend_from_slice(&sub[..sub.len().min(128)]);
    msg.extend_from_slice(b"'. Try ");
    msg.extend(container.iter().map(u8::to_ascii_uppercase));
    msg.extend_from_slice(b" HELP.");
    write_error_bytes(out, &msg);
}

/// Redis 7's reply to an unknown command, e.g.
/// `-ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
fn err_unknown_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let name = arg(args, 0);
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(&name[..name.len().min(128)]);
    msg.extend_from_slice(b"', with args beginning with: ");
    // Like Redis: quote arguments while the list is under 128 bytes,
    // truncating the last one to fit.
    let mut list_len = 0;
    for a in &args[1..] {
        if list_len >= 128 {
            break;
        }
        let a = a.as_ref();
        let a = &a[..a.len().min(128 - list_len)];
        msg.push(b'\'');
        msg.extend_from_slice(a);
        msg.extend_from_slice(b"' ");
        list_len += a.len() + 3;
    }
    write_error_bytes(out, &msg);
}

/// Redis's WRONGTYPE error.
fn write_wrongtype(out: &mut Vec<u8>, e: WrongType) {
    write_error(out, &e.to_string());
}

/// Format `v` into `buf`, returning the used part.
fn i64_bytes(v: i64, buf: &mut [u8; 21]) -> &[u8] {
    let mut digits = [0u8; 20];
    let d = format_u64(v.unsigned_abs(), &mut digits);
    let sign = usize::from(v < 0);
    buf[0] = b'-';
    buf[sign..sign + d.len()].copy_from_slice(d);
    &buf[..sign + d.len()]
}

/// Execute one command (`args[0]` is the name, matched case-insensitively),
/// appending its reply to `out`. An empty `args` does nothing (the decoder's
/// "skipped bytes" item).
pub fn execute<A: AsRef<[u8]>>(
    store: &Store,
    session: &mut Session,
    args: &[A],
    out: &mut Vec<u8>,
) -> Outcome {
    run(store, session, args, out, None, false)
}

/// Like [`execute`], except that a GET of a value of [`SPLICE_AT`] bytes or
/// more leaves the value out of `out`: `out` ends with the bulk header
/// (`$<len>\r\n`), the value comes back in `*splice` (shared with the
/// store, not copied), and the reply is complete once the caller has sent
/// the value and then [`SPLICE_TAIL`]. Readers of a large value then cost
/// neither a copy under the shard lock nor a copy each.
pub fn execute_spliced<A: AsRef<[u8]>>(
    store: &Store,
    session: &mut Session,
    args: &[A],
    out: &mut Vec<u8>,
    splice: &mut Option<Arc<Vec<u8>>>,
) -> Outcome {
    run(store, session, args, out, Some(splice), false)
}

/// The command table: name (lowercase) => arity (Redis's: negative means
/// "at least"), handler. One list makes both the dispatch and the queueing
/// check inside MULTI.
macro_rules! command_table {
    ($gen:ident) => {
        $gen! {
        "get" => 2, get;
        "set" => -3, set;
        "ping" => -1, ping;
        "incr" => 2, incr;
        "decr" => 2, decr;
        "incrby" => 3, incrby;
        "decrby" => 3, decrby;
        "mget" => -2, mget;
        "mset" => -3, mset;
        "del" => -2, del;
        "unlink" => -2, del;
        "exists" => -2, exists;
        "echo" => 2, echo;
        "getset" => 3, getset;
        "setnx" => 3, setnx;
        "setex" => 4, setex;
        "psetex" => 4, psetex;
        "append" => 3, append;
        "strlen" => 2, strlen;
        "expire" => -3, expire;
        "pexpire" => -3, pexpire;
        "expireat" => -3, expireat;
        "pexpireat" => -3, pexpireat;
        "ttl" => 2, ttl;
        "pttl" => 2, pttl;
        "persist" => 2, persist;
        "type" => 2, type_cmd;
        "lpush" => -3, lpush;
        "rpush" => -3, rpush;
        "lpushx" => -3, lpushx;
        "rpushx" => -3, rpushx;
        "lpop" => -2, lpop;
        "rpop" => -2, rpop;
        "llen" => 2, llen;
        "lrange" => 4, lrange;
        "lindex" => 3, lindex;
        "lset" => 4, lset;
        "ltrim" => 4, ltrim;
        "lrem" => 4, lrem;
        "hset" => -4, hset;
        "hmset" => -4, hmset;
        "hsetnx" => 4, hsetnx;
        "hget" => 3, hget;
        "hmget" => -3, hmget;
        "hdel" => -3, hdel;
        "hlen" => 2, hlen;
        "hexists" => 3, hexists;
        "hstrlen" => 3, hstrlen;
        "hgetall" => 2, hgetall;
        "hkeys" => 2, hkeys;
        "hvals" => 2, hvals;
        "hincrby" => 4, hincrby;
        "sadd" => -3, sadd;
        "srem" => -3, srem;
        "sismember" => 3, sismember;
        "smismember" => -3, smismember;
        "scard" => 2, scard;
        "smembers" => 2, smembers;
        "spop" => -2, spop;
        "linsert" => 5, linsert;
        "blpop" => -3, blpop;
        "brpop" => -3, brpop;
        "blmove" => 6, blmove;
        "brpoplpush" => 4, brpoplpush;
        "lpos" => -3, lpos;
        "srandmember" => -2, srandmember;
        "rename" => 3, rename;
        "renamenx" => 3, renamenx;
        "copy" => -3, copy;
        "msetnx" => -3, msetnx;
        "lmove" => 5, lmove;
        "rpoplpush" => 3, rpoplpush;
        "smove" => 4, smove;
        "sinter" => -2, sinter;
        "sunion" => -2, sunion;
        "sdiff" => -2, sdiff;
        "sinterstore" => -3, sinterstore;
        "sunionstore" => -3, sunionstore;
        "sdiffstore" => -3, sdiffstore;
        "sintercard" => -3, sintercard;
        "getdel" => 2, getdel;
        "getex" => -2, getex;
        "getrange" => 4, getrange;
        "setrange" => 4, setrange;
        "incrbyfloat" => 3, incrbyfloat;
        "expiretime" => 2, expiretime;
        "pexpiretime" => 2, pexpiretime;
        "keys" => 2, keys;
        "dbsize" => 1, dbsize;
        "flushdb" => -1, flush;
        "flushall" => -1, flush;
        "select" => 2, select;
        "info" => -1, info;
        "time" => 1, time;
        "command" => -1, command;
        "client" => -2, client;
        "function" => -2, function;
        "config" => -2, config;
        "hello" => -1, hello;
        "auth" => -2, auth;
        "quit" => -1, quit;
        "zadd" => -4, zadd;
        "zincrby" => 4, zincrby;
        "zrem" => -3, zrem;
        "zscore" => 3, zscore;
        "zmscore" => -3, zmscore;
        "zcard" => 2, zcard;
        "zcount" => 4, zcount;
        "zrank" => 3, zrank;
        "zrevrank" => 3, zrevrank;
        "zrange" => -4, zrange;
        "zrevrange" => -4, zrevrange;
        "zrangebyscore" => -4, zrangebyscore;
        "zrevrangebyscore" => -4, zrevrangebyscore;
        "zpopmin" => -2, zpopmin;
        "zpopmax" => -2, zpopmax;
        "zremrangebyrank" => 4, zremrangebyrank;
        "zremrangebyscore" => 4, zremrangebyscore;
        "scan" => -2, scan;
        "sscan" => -3, sscan;
        "hscan" => -3, hscan;
        "zscan" => -3, zscan;
        "randomkey" => 1, randomkey;
        "zrangebylex" => -4, zrangebylex;
        "zrevrangebylex" => -4, zrevrangebylex;
        "zlexcount" => 4, zlexcount;
        "zremrangebylex" => 4, zremrangebylex;
        "zunionstore" => -4, zunionstore;
        "zunion" => -3, zunion;
        "zinter" => -3, zinter;
        "zinterstore" => -4, zinterstore;
        "zdiff" => -3, zdiff;
        "zdiffstore" => -4, zdiffstore;
        "zintercard" => -3, zintercard;
        "zrangestore" => -5, zrangestore;
        "zmpop" => -4, zmpop;
        "bzpopmin" => -3, bzpopmin;
        "bzpopmax" => -3, bzpopmax;
        "bzmpop" => -5, bzmpop;
        "lmpop" => -4, lmpop;
        "setbit" => 4, setbit;
        "getbit" => 3, getbit;
        "bitcount" => -2, bitcount;
        "bitpos" => -3, bitpos;
        "bitop" => -4, bitop;
        "lcs" => -3, lcs;
        "sort" => -2, sort;
        "sort_ro" => -2, sort_ro;
        "blmpop" => -5, blmpop;
        "hincrbyfloat" => 4, hincrbyfloat;
        "hrandfield" => -2, hrandfield;
        "zrandmember" => -2, zrandmember;
        "object" => -2, object;
        "memory" => -2, memory;
        "multi" => 1, multi;
        "exec" => 1, exec_outside;
        "discard" => 1, discard;
        "watch" => -2, watch;
        "unwatch" => 1, unwatch;
        }
    };
}

macro_rules! gen_dispatch {
    ($($name:literal => $arity:literal, $handler:ident;)*) => {
        /// Run the command named `lower` (arity checked).
        fn dispatch<A: AsRef<[u8]>>(lower: &str, cx: &mut Cx<'_>, args: &[A]) {
            match lower {
                $($name => {
                    if arity_ok(args.len(), $arity) {
                        $handler(cx, args)
                    } else {
                        err_arity(cx.out, $name)
                    }
                })*
                _ => err_unknown_command(cx.out, args),
            }
        }

        /// The arity of the command named `lower`; `None` if unknown.
        fn arity_of(lower: &str) -> Option<i32> {
            match lower {
                $($name => Some($arity),)*
                _ => None,
            }
        }
    };
}

command_table!(gen_dispatch);

const E_OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Commands that may add data (Redis's `denyoom` flag): past `maxmemory`
/// they first make room by the eviction policy, or are refused.
fn grows_memory(lower: &str) -> bool {
    matches!(
        lower,
        "set"
            | "setnx"
            | "setex"
            | "psetex"
            | "getset"
            | "append"
            | "setrange"
            | "setbit"
            | "incr"
            | "decr"
            | "incrby"
            | "decrby"
            | "incrbyfloat"
            | "mset"
            | "msetnx"
            | "lpush"
            | "rpush"
            | "lpushx"
            | "rpushx"
            | "linsert"
            | "lset"
            | "lmove"
            | "rpoplpush"
            | "blmove"
            | "brpoplpush"
            | "hset"
            | "hmset"
            | "hsetnx"
            | "hincrby"
            | "hincrbyfloat"
            | "sadd"
            | "smove"
            | "sinterstore"
            | "sunionstore"
            | "sdiffstore"
            | "zadd"
            | "zincrby"
            | "zunionstore"
            | "zinterstore"
            | "zdiffstore"
            | "zrangestore"
            | "copy"
            | "bitop"
            | "sort"
    )
}

/// A command's lowercase name, if short enough to be one.
fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; 16]) -> &'b str {
    if name.len() > buf.len() {
        return "";
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..name.len()]).unwrap_or("")
}

fn run<A: AsRef<[u8]>>(
    store: &Store,
    session: &mut Session,
    args: &[A],
    out: &mut Vec<u8>,
    splice: Option<&mut Option<Arc<Vec<u8>>>>,
    retrying: bool,
) -> Outcome {
    let Some(first) = args.first() else {
        return Outcome::Continue;
    };
    let mut buf = [0u8; 16];
    let lower = lowercase(first.as_ref(), &mut buf);
    // Inside MULTI, commands are checked and queued, not run.
    if session.tx.is_some() && !matches!(lower, "exec" | "discard" | "multi" | "watch" | "quit") {
        queue(session, lower, args, out);
        return Outcome::Continue;
    }
    let mut cx = Cx {
        store,
        session,
        out,
        splice,
        close: false,
        block: None,
        may_block: true,
        retrying,
    };
    if lower == "exec" {
        // EXEC takes every gate itself.
        exec(&mut cx);
    } else if matches!(lower, "sort" | "sort_ro") && sort::needs_exclusive(args) {
        // It reads or writes keys it can only name as it goes: alone, as
        // EXEC runs (see `sort`).
        let _all = store.exclusive();
        dispatch(lower, &mut cx, args);
        serve_ready(store);
    } else {
        let _gate = store.gate(cx.session.id);
        if store.maxmemory() > 0 && grows_memory(lower) && !store.make_room() {
            write_error(cx.out, E_OOM);
        } else {
            dispatch(lower, &mut cx, args);
        }
        serve_ready(store);
    }
    if let Some((keys, timeout)) = cx.block.take() {
        cx.session.blocked = Some(Blocked {
            args: args.iter().map(|a| a.as_ref().to_vec()).collect(),
            keys,
            timeout,
        });
        return Outcome::Block;
    }
    if cx.close {
        Outcome::Close
    } else {
        Outcome::Continue
    }
}

/// Serve the clients blocked on keys that got data ([`Store::signal`]),
/// first come first served per key, until every such key is drained or has
/// no one left waiting. Called by the client whose command added the data,
/// before its next command (and, inside EXEC, after the whole
/// transaction), still holding its gate: as in Redis, a woken client sees
/// the state that command left, and clients blocked longer are served
/// first. A served command that pushes elsewhere (BLMOVE) makes that key
/// ready in turn, so chains of blocked moves complete here too.
pub fn serve_ready(store: &Store) {
    while let Some(key) = store.take_ready() {
        for w in store.waiters_on(&key) {
            if !w.claim() {
                // Timing out, gone, or being served by another thread.
                continue;
            }
            match serve_blocked(store, &w.args) {
                Some(reply) => {
                    store.unblock(w.id, &w.keys);
                    (w.deliver)(reply);
                }
                None => {
                    // Nothing left for it (or the key changed type): it
                    // keeps waiting, and so do the ones behind it.
                    w.release();
                    break;
                }
            }
        }
    }
}

/// Run a blocked client's command for it: its reply, or `None` if it would
/// still block.
fn serve_blocked(store: &Store, args: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut buf = [0u8; 16];
    let lower = lowercase(args.first()?, &mut buf);
    let mut session = Session::with_id(0);
    let mut out = Vec::new();
    let mut cx = Cx {
        store,
        session: &mut session,
        out: &mut out,
        splice: None,
        close: false,
        block: None,
        may_block: true,
        retrying: true,
    };
    dispatch(lower, &mut cx, args);
    cx.block.is_none().then_some(out)
}

/// The blocked command has been served by another client (see
/// [`serve_ready`]): the session is no longer blocked.
pub fn end_blocked(session: &mut Session) {
    session.blocked = None;
}

/// Run the blocked command again (a key it waits on was pushed to):
/// [`Outcome::Continue`] with its reply in `out`, or [`Outcome::Block`]
/// again if another client took the data first. Nothing happens (and
/// `Continue` comes back) if the session is not blocked.
pub fn retry_blocked(store: &Store, session: &mut Session, out: &mut Vec<u8>) -> Outcome {
    let Some(b) = session.blocked.take() else {
        return Outcome::Continue;
    };
    run(store, session, &b.args, out, None, true)
}

/// The blocked command's time is up: its timeout reply (a null array) goes
/// to `out` and the session is no longer blocked.
pub fn time_out_blocked(session: &mut Session, out: &mut Vec<u8>) {
    if session.blocked.take().is_some() {
        write_null_array(out);
    }
}

// ---------------------------------------------------------------------------
// Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH
//
// Queued commands are checked (name, arity) as they come; one refused
// makes EXEC answer EXECABORT. EXEC takes every transaction gate
// exclusively (`Store::exclusive`), so no other client's command runs
// between its commands; then, unless a WATCHed key changed (the watch
// flag is raised by the write), it runs them and answers their replies in
// one array.

const E_EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Check and queue one command inside MULTI.
fn queue<A: AsRef<[u8]>>(session: &mut Session, lower: &str, args: &[A], out: &mut Vec<u8>) {
    let tx = session.tx.as_mut().expect("inside MULTI");
    match arity_of(lower) {
        None => {
            err_unknown_command(out, args);
            tx.failed = true;
        }
        Some(a) if !arity_ok(args.len(), a) => {
            err_arity(out, lower);
            tx.failed = true;
        }
        Some(_) => {
            tx.queue
                .push(args.iter().map(|a| a.as_ref().to_vec()).collect());
            out.extend_from_slice(b"+QUEUED\r\n");
        }
    }
}

fn multi<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    if cx.session.tx.is_some() {
        return write_error(cx.out, "ERR MULTI calls can not be nested");
    }
    cx.session.tx = Some(Transaction::default());
    cx.out.extend_from_slice(OK);
}

/// EXEC reaching the dispatch: outside MULTI (inside, `run` calls `exec`).
fn exec_outside<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    write_error(cx.out, "ERR EXEC without MULTI");
}

fn exec(cx: &mut Cx<'_>) {
    let Some(tx) = cx.session.tx.take() else {
        return exec_outside::<&[u8]>(cx, &[]);
    };
    // EXEC ends the watch whatever happens.
    let watch = cx.session.watch.take();
    if tx.failed {
        return write_error(cx.out, E_EXECABORT);
    }
    let _all = cx.store.exclusive();
    if watch.is_some_and(|f| f.load(Ordering::Acquire)) {
        return write_null_array(cx.out);
    }
    write_array_header(cx.out, tx.queue.len());
    let mut buf = [0u8; 16];
    for args in &tx.queue {
        let lower = lowercase(&args[0], &mut buf);
        let mut inner = Cx {
            store: cx.store,
            session: &mut *cx.session,
            out: &mut *cx.out,
            splice: None,
            close: false,
            block: None,
            may_block: false,
            retrying: false,
        };
        dispatch(lower, &mut inner, args);
        cx.close |= inner.close;
    }
    // Clients blocked on keys the transaction pushed to see its end state.
    serve_ready(cx.store);
}

fn discard<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    if cx.session.tx.take().is_none() {
        return write_error(cx.out, "ERR DISCARD without MULTI");
    }
    cx.session.watch = None;
    cx.out.extend_from_slice(OK);
}

fn watch<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    if cx.session.tx.is_some() {
        return write_error(cx.out, "ERR WATCH inside MULTI is not allowed");
    }
    let flag = cx
        .session
        .watch
        .get_or_insert_with(|| Arc::new(AtomicBool::new(false)));
    for k in &args[1..] {
        cx.store.watch(k.as_ref(), flag);
    }
    cx.out.extend_from_slice(OK);
}

fn unwatch<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    cx.session.watch = None;
    cx.out.extend_from_slice(OK);
}

// ---------------------------------------------------------------------------
// Connection and server

fn ping<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    match args.len() {
        1 => cx.out.extend_from_slice(b"+PONG\r\n"),
        2 => write_bulk(cx.out, arg(args, 1)),
        _ => err_arity(cx.out, "ping"),
    }
}

fn echo<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    write_bulk(cx.out, arg(args, 1));
}

fn quit<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    cx.out.extend_from_slice(OK);
    cx.close = true;
}

fn select<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    match parse_i64(arg(args, 1)).and_then(|n| i32::try_from(n).ok()) {
        None => write_error(cx.out, E_NOT_INT),
        Some(0) => cx.out.extend_from_slice(OK),
        Some(_) => write_error(cx.out, E_DB_RANGE),
    }
}

fn dbsize<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    write_int(cx.out, cx.store.dbsize() as i64);
}

fn flush<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let ok = match args.len() {
        1 => true,
        2 => {
            let mode = arg(args, 1);
            mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync")
        }
        _ => false,
    };
    if ok {
        cx.store.flush();
        cx.out.extend_from_slice(OK);
    } else {
        write_error(cx.out, E_SYNTAX);
    }
}

fn time<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut buf = [0u8; 20];
    write_array_header(cx.out, 2);
    write_bulk(cx.out, format_u64(now.as_secs(), &mut buf));
    write_bulk(cx.out, format_u64(u64::from(now.subsec_micros()), &mut buf));
}

/// INFO's sections, in Redis's order.
const INFO_SECTIONS: [&str; 5] = ["server", "clients", "memory", "stats", "keyspace"];

fn info<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let all = args.len() == 1;
    let mut want = [all; INFO_SECTIONS.len()];
    for a in &args[1..] {
        let s = a.as_ref();
        if [&b"default"[..], b"all", b"everything"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
        {
            want = [true; INFO_SECTIONS.len()];
        }
        for (i, name) in INFO_SECTIONS.iter().enumerate() {
            want[i] |= s.eq_ignore_ascii_case(name.as_bytes());
        }
    }
    let [server, clients, memory, stats, keyspace] = want;
    let mut text = String::new();
    if server {
        let uptime = cx.store.uptime_secs();
        text.push_str(&format!(
            "# Server\r\n\
             redis_version:{REDIS_VERSION}\r\n\
             redis_git_sha1:00000000\r\n\
             redis_git_dirty:0\r\n\
             redis_mode:standalone\r\n\
             server_name:evnet\r\n\
             evnet_version:{}\r\n\
             os:{} {}\r\n\
             arch_bits:{}\r\n\
             multiplexing_api:epoll\r\n\
             process_id:{}\r\n\
             uptime_in_seconds:{uptime}\r\n\
             uptime_in_days:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            usize::BITS,
            std::process::id(),
            uptime / 86400,
        ));
    }
    if clients {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!(
            "# Clients\r\nblocked_clients:{}\r\n",
            cx.store.blocked_clients()
        ));
    }
    if memory {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let used = cx.store.used_memory();
        let rss = crate::sys::alloc::resident().unwrap_or(0);
        let max = cx.store.maxmemory();
        text.push_str(&format!(
            "# Memory\r\n\
             used_memory:{used}\r\n\
             used_memory_human:{}\r\n\
             used_memory_rss:{rss}\r\n\
             used_memory_rss_human:{}\r\n\
             used_memory_peak:{}\r\n\
             maxmemory:{max}\r\n\
             maxmemory_human:{}\r\n\
             maxmemory_policy:{}\r\n\
             mem_fragmentation_ratio:{:.2}\r\n\
             mem_allocator:{}\r\n",
            human_bytes(used),
            human_bytes(rss),
            cx.store.peak_memory(),
            human_bytes(max),
            cx.store.policy().name(),
            if used > 0 {
                rss as f64 / used as f64
            } else {
                0.0
            },
            if crate::sys::alloc::allocated().is_some() {
                "libc (counted)"
            } else {
                "libc (rss)"
            },
        ));
    }
    if stats {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!(
            "# Stats\r\nevicted_keys:{}\r\n",
            cx.store.evicted_keys()
        ));
    }
    if keyspace {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str("# Keyspace\r\n");
        let keys = cx.store.dbsize();
        if keys > 0 {
            text.push_str(&format!(
                "db0:keys={keys},expires={},avg_ttl=0\r\n",
                cx.store.expires_count()
            ));
        }
    }
    write_bulk(cx.out, text.as_bytes());
}

/// MEMORY USAGE key [SAMPLES n] | MEMORY HELP.
fn memory<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let sub = arg(args, 1).to_ascii_lowercase();
    match sub.as_slice() {
        b"usage" if args.len() == 3 || args.len() == 5 => {
            if args.len() == 5
                && (!arg(args, 3).eq_ignore_ascii_case(b"samples")
                    || parse_i64(arg(args, 4)).is_none())
            {
                return write_error(cx.out, E_SYNTAX);
            }
            match cx.store.with_key(arg(args, 2), |slot| slot.memory_usage()) {
                Some(n) => write_int(cx.out, n as i64),
                None => write_null(cx.out),
            }
        }
        b"usage" => err_arity(cx.out, "memory|usage"),
        b"help" => {
            write_array_header(cx.out, 1);
            write_bulk(cx.out, b"MEMORY USAGE <key> [SAMPLES <count>]");
        }
        _ => err_subcommand(cx.out, arg(args, 0), arg(args, 1)),
    }
}

/// Bytes as Redis's INFO shows them ("1.50M").
fn human_bytes(n: usize) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[i])
    }
}

fn command<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    if args.len() == 1 {
        cx.out.extend_from_slice(EMPTY_ARRAY);
        return;
    }
    let sub = arg(args, 1);
    if sub.eq_ignore_ascii_case(b"count") {
        if args.len() != 2 {
            return err_arity(cx.out, "command|count");
        }
        write_int(cx.out, COMMAND_NAMES.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"docs") {
        cx.out.extend_from_slice(EMPTY_ARRAY);
    } else if sub.eq_ignore_ascii_case(b"list") {
        if args.len() != 2 {
            return write_error(cx.out, E_SYNTAX);
        }
        write_array_header(cx.out, COMMAND_NAMES.len());
        for n in COMMAND_NAMES {
            write_bulk(cx.out, n.as_bytes());
        }
    } else {
        err_subcommand(cx.out, arg(args, 0), sub);
    }
}

/// Redis accepts client names made of `!`..`~` only.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn client<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let sub = arg(args, 1);
    let want = |n: usize, name: &str, out: &mut Vec<u8>| {
        if args.len() == n {
            true
        } else {
            err_arity(out, name);
            false
        }
    };
    if sub.eq_ignore_ascii_case(b"setname") {
        if !want(3, "client|setname", cx.out) {
            return;
        }
        let name = arg(args, 2);
        if !valid_name(name) {
            return write_error(cx.out, E_CLIENT_NAME);
        }
        cx.session.name = (!name.is_empty()).then(|| name.to_vec());
        cx.out.extend_from_slice(OK);
    } else if sub.eq_ignore_ascii_case(b"getname") {
        if want(2, "client|getname", cx.out) {
            match &cx.session.name {
                Some(n) => write_bulk(cx.out, n),
                None => write_null(cx.out),
            }
        }
    } else if sub.eq_ignore_ascii_case(b"id") {
        if want(2, "client|id", cx.out) {
            write_int(cx.out, cx.session.id as i64);
        }
    } else if sub.eq_ignore_ascii_case(b"unblock") {
        if !(3..=4).contains(&args.len()) {
            return err_arity(cx.out, "client|unblock");
        }
        let Some(id) = parse_i64(arg(args, 2)) else {
            return write_error(cx.out, E_NOT_INT);
        };
        let reply: &[u8] = match args.get(3).map(|a| a.as_ref().to_ascii_lowercase()) {
            None => b"*-1\r\n",
            Some(m) if m == b"timeout" => b"*-1\r\n",
            Some(m) if m == b"error" => b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n",
            Some(_) => {
                return write_error(
                    cx.out,
                    "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                )
            }
        };
        // Settled here as its timeout would be: answered, out of the queues.
        match cx.store.waiter(id as u64).filter(|w| w.claim()) {
            Some(w) => {
                cx.store.unblock(w.id, &w.keys);
                (w.deliver)(reply.to_vec());
                write_int(cx.out, 1);
            }
            None => write_int(cx.out, 0),
        }
    } else if sub.eq_ignore_ascii_case(b"info") {
        if want(2, "client|info", cx.out) {
            let line = client_info_line(cx.session);
            write_bulk(cx.out, &line);
        }
    } else if sub.eq_ignore_ascii_case(b"setinfo") {
        if !want(4, "client|setinfo", cx.out) {
            return;
        }
        let (attr, value) = (arg(args, 2), arg(args, 3));
        let slot = if attr.eq_ignore_ascii_case(b"lib-name") {
            &mut cx.session.lib_name
        } else if attr.eq_ignore_ascii_case(b"lib-ver") {
            &mut cx.session.lib_ver
        } else {
            let mut msg = b"ERR Unrecognized option '".to_vec();
            msg.extend_from_slice(attr);
            msg.push(b'\'');
            return write_error_bytes(cx.out, &msg);
        };
        if !valid_name(value) {
            let mut msg = b"ERR ".to_vec();
            msg.extend(attr.iter().map(u8::to_ascii_lowercase));
            msg.extend_from_slice(b" cannot contain spaces, newlines or special characters.");
            return write_error_bytes(cx.out, &msg);
        }
        *slot = (!value.is_empty()).then(|| value.to_vec());
        cx.out.extend_from_slice(OK);
    } else {
        err_subcommand(cx.out, arg(args, 0), sub);
    }
}

fn client_info_line(s: &Session) -> Vec<u8> {
    let mut line = format!(
        "id={} addr={} laddr={} fd={} name=",
        s.id,
        s.peer_addr.as_deref().unwrap_or(""),
        s.local_addr.as_deref().unwrap_or(""),
        s.fd
    )
    .into_bytes();
    line.extend_from_slice(s.name.as_deref().unwrap_or(b""));
    line.extend_from_slice(
        format!(
            " age={} idle=0 flags=N db=0 sub=0 psub=0 multi=-1 cmd=client|info user=default redir=-1 resp=2 lib-name=",
            s.created.elapsed().as_secs()
        )
        .as_bytes(),
    );
    line.extend_from_slice(s.lib_name.as_deref().unwrap_or(b""));
    line.extend_from_slice(b" lib-ver=");
    line.extend_from_slice(s.lib_ver.as_deref().unwrap_or(b""));
    line.push(b'\n');
    line
}

fn function<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let sub = arg(args, 1);
    if sub.eq_ignore_ascii_case(b"flush") {
        match args.len() {
            2 => cx.out.extend_from_slice(OK),
            3 if arg(args, 2).eq_ignore_ascii_case(b"async")
                || arg(args, 2).eq_ignore_ascii_case(b"sync") =>
            {
                cx.out.extend_from_slice(OK)
            }
            _ => write_error(cx.out, E_SYNTAX),
        }
    } else {
        err_subcommand(cx.out, arg(args, 0), sub);
    }
}

/// The parameters CONFIG GET reports (fixed: this server has no
/// persistence and one database).
/// Parameters CONFIG GET shows that never change here.
const CONFIG_FIXED: &[(&str, &str)] = &[
    ("appendonly", "no"),
    ("databases", "1"),
    ("maxclients", "10000"),
    ("timeout", "0"),
    ("proto-max-bulk-len", "536870912"),
];

/// List tunables of Redis's quicklist: accepted and shown, but lists here
/// have one representation (a deque), so they change nothing.
const LIST_TUNABLES: &[&str] = &[
    "list-max-listpack-size",
    "list-max-ziplist-size",
    "list-compress-depth",
];

/// Every parameter CONFIG GET knows, with its current value.
fn config_values(store: &Store) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![("save".into(), String::new())];
    v.extend(
        CONFIG_FIXED
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    v.push(("maxmemory".into(), store.maxmemory().to_string()));
    v.push(("maxmemory-policy".into(), store.policy().name().into()));
    for (name, value) in super::compact::limits().named() {
        v.push((name.into(), value.load(Ordering::Relaxed).to_string()));
    }
    let lists = LIST_SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    for (i, name) in LIST_TUNABLES.iter().enumerate() {
        v.push((name.to_string(), lists[i].to_string()));
    }
    v
}

/// The list tunables as last set (they are only shown).
static LIST_SETTINGS: std::sync::Mutex<[i64; 3]> = std::sync::Mutex::new([-2, -2, 0]);

/// A memory size as CONFIG takes one: bytes, or with a unit (k, kb, m, mb,
/// g, gb; the `b` forms are powers of 1024).
pub fn parse_memory(v: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(v).ok()?.to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mul: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    num.parse::<usize>().ok()?.checked_mul(mul)
}

/// Check and apply one CONFIG SET pair; the error text on failure.
fn config_set_one(store: &Store, name: &[u8], value: &[u8]) -> Result<(), String> {
    let lname = String::from_utf8_lossy(name).to_ascii_lowercase();
    let failed = |why: &str| {
        format!("ERR CONFIG SET failed (possibly related to argument '{lname}') - {why}")
    };
    if let Some(limit) = super::compact::limits().by_name(name) {
        let n = parse_i64(value)
            .filter(|n| *n >= 0)
            .ok_or_else(|| failed("argument couldn't be parsed into an integer"))?;
        limit.store(n as usize, Ordering::Relaxed);
        return Ok(());
    }
    if let Some(i) = LIST_TUNABLES.iter().position(|t| *t == lname) {
        let n = parse_i64(value)
            .ok_or_else(|| failed("argument couldn't be parsed into an integer"))?;
        LIST_SETTINGS.lock().unwrap_or_else(|e| e.into_inner())[i] = n;
        return Ok(());
    }
    match lname.as_str() {
        "maxmemory" => {
            let n = parse_memory(value).ok_or_else(|| failed("argument must be a memory value"))?;
            store.set_maxmemory(n, store.policy());
            Ok(())
        }
        "maxmemory-policy" => {
            let p = super::store::Policy::parse(value).ok_or_else(|| failed("argument(s) must be one of the following: volatile-lru, allkeys-lru, volatile-random, allkeys-random, volatile-ttl, noeviction"))?;
            store.set_maxmemory(store.maxmemory(), p);
            Ok(())
        }
        // No snapshots here: "no save points" is the only setting.
        "save" if value.is_empty() => Ok(()),
        "save" => Err(failed("evnet keeps no snapshots; only \"\" is accepted")),
        _ => Err(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            String::from_utf8_lossy(name)
        )),
    }
}

fn config<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let sub = arg(args, 1);
    if sub.eq_ignore_ascii_case(b"get") {
        if args.len() < 3 {
            return err_arity(cx.out, "config|get");
        }
        let values = config_values(cx.store);
        let hits: Vec<&(String, String)> = values
            .iter()
            .filter(|(name, _)| {
                args[2..]
                    .iter()
                    .any(|p| glob_match(p.as_ref(), name.as_bytes(), true))
            })
            .collect();
        write_array_header(cx.out, 2 * hits.len());
        for (name, value) in hits {
            write_bulk(cx.out, name.as_bytes());
            write_bulk(cx.out, value.as_bytes());
        }
    } else if sub.eq_ignore_ascii_case(b"resetstat") {
        if args.len() != 2 {
            return err_arity(cx.out, "config|resetstat");
        }
        cx.out.extend_from_slice(OK);
    } else if sub.eq_ignore_ascii_case(b"set") {
        if args.len() < 4 || !args.len().is_multiple_of(2) {
            return err_arity(cx.out, "config|set");
        }
        for p in args[2..].chunks_exact(2) {
            if let Err(msg) = config_set_one(cx.store, p[0].as_ref(), p[1].as_ref()) {
                return write_error_bytes(cx.out, msg.as_bytes());
            }
        }
        cx.out.extend_from_slice(OK);
    } else {
        err_subcommand(cx.out, arg(args, 0), sub);
    }
}

/// OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP. ENCODING names this
/// server's own representation honestly: `raw` (strings are bytes),
/// `deque` (lists), `hashtable` (hashes, sets), `skiplist` (sorted sets).
fn object<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let sub = arg(args, 1).to_ascii_lowercase();
    if sub == b"help" {
        write_array_header(cx.out, 1);
        return write_bulk(cx.out, b"OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ <key>");
    }
    if args.len() != 3 {
        return err_arity(cx.out, "object");
    }
    let found = cx
        .store
        .with_key(arg(args, 2), |slot| slot.encoding().zip(slot.idle_secs()));
    let Some((encoding, idle)) = found else {
        return write_null(cx.out);
    };
    match sub.as_slice() {
        b"encoding" => write_bulk(cx.out, encoding.as_bytes()),
        b"refcount" => write_int(cx.out, 1),
        b"idletime" => write_int(cx.out, i64::from(idle)),
        b"freq" => write_error(
            cx.out,
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        _ => err_subcommand(cx.out, arg(args, 0), arg(args, 1)),
    }
}

/// No password is configured: the `default` user accepts anything, as in
/// a stock Redis.
fn check_auth(user: &[u8]) -> Result<(), &'static str> {
    if user == b"default" {
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

fn auth<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    match args.len() {
        2 => write_error(
            cx.out,
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ),
        3 => match check_auth(arg(args, 1)) {
            Ok(()) => cx.out.extend_from_slice(OK),
            Err(e) => write_error(cx.out, e),
        },
        _ => write_error(cx.out, E_SYNTAX),
    }
}

fn hello<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let mut next = 1;
    if args.len() >= 2 {
        next = 2;
        match parse_i64(arg(args, 1)) {
            None => {
                return write_error(
                    cx.out,
                    "ERR Protocol version is not an integer or out of range",
                )
            }
            // Only RESP2 is spoken here; RESP3 is refused like an unknown
            // version.
            Some(2) => {}
            Some(_) => return write_error(cx.out, "NOPROTO unsupported protocol version"),
        }
    }
    let mut user = None;
    let mut setname = None;
    let mut j = next;
    while j < args.len() {
        let opt = arg(args, j);
        let more = args.len() - 1 - j;
        if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
            user = Some(arg(args, j + 1));
            j += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
            setname = Some(arg(args, j + 1));
            j += 2;
        } else {
            let mut msg = b"ERR Syntax error in HELLO option '".to_vec();
            msg.extend_from_slice(opt);
            msg.push(b'\'');
            return write_error_bytes(cx.out, &msg);
        }
    }
    if let Some(u) = user {
        if let Err(e) = check_auth(u) {
            return write_error(cx.out, e);
        }
    }
    if let Some(name) = setname {
        if !valid_name(name) {
            return write_error(cx.out, E_CLIENT_NAME);
        }
        cx.session.name = (!name.is_empty()).then(|| name.to_vec());
    }
    let out = &mut *cx.out;
    write_array_header(out, 14);
    write_bulk(out, b"server");
    write_bulk(out, b"redis");
    write_bulk(out, b"version");
    write_bulk(out, REDIS_VERSION.as_bytes());
    write_bulk(out, b"proto");
    write_int(out, 2);
    write_bulk(out, b"id");
    write_int(out, cx.session.id as i64);
    write_bulk(out, b"mode");
    write_bulk(out, b"standalone");
    write_bulk(out, b"role");
    write_bulk(out, b"master");
    write_bulk(out, b"modules");
    out.extend_from_slice(EMPTY_ARRAY);
}

// ---------------------------------------------------------------------------
// Strings

fn get<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let out = &mut *cx.out;
    let splice = cx.splice.as_deref_mut();
    cx.store
        .with_key(arg(args, 1), |slot| match (slot.value(), splice) {
            (Ok(Some(v)), Some(splice)) if v.len() >= SPLICE_AT => {
                write_bulk_header(out, v.len());
                *splice = slot.value_shared();
            }
            (Ok(Some(v)), _) => write_bulk(out, v),
            (Ok(None), _) => write_null(out),
            (Err(e), _) => write_wrongtype(out, e),
        });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Turn an expire argument into an absolute deadline, replying with the
/// error (and returning `None`) if it is not valid. Mirrors Redis's
/// `getExpireMillisecondsOrReply`.
fn deadline(out: &mut Vec<u8>, now: u64, unit: Unit, raw: &[u8], cmd: &str) -> Option<u64> {
    let Some(v) = parse_i64(raw) else {
        write_error(out, E_NOT_INT);
        return None;
    };
    let seconds = matches!(unit, Unit::Ex | Unit::ExAt);
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        err_expire(out, cmd);
        return None;
    }
    let ms = if seconds { v * 1000 } else { v };
    let at = match unit {
        Unit::Ex | Unit::Px => ms.checked_add(now as i64),
        Unit::ExAt | Unit::PxAt => Some(ms),
    };
    match at {
        Some(t) if t > 0 => Some(t as u64),
        _ => {
            err_expire(out, cmd);
            None
        }
    }
}

fn set<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expire: Option<(Unit, &[u8])> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = arg(args, i);
        let has_next = i + 1 < args.len();
        let unit = if opt.eq_ignore_ascii_case(b"ex") {
            Some(Unit::Ex)
        } else if opt.eq_ignore_ascii_case(b"px") {
            Some(Unit::Px)
        } else if opt.eq_ignore_ascii_case(b"exat") {
            Some(Unit::ExAt)
        } else if opt.eq_ignore_ascii_case(b"pxat") {
            Some(Unit::PxAt)
        } else {
            None
        };
        if opt.eq_ignore_ascii_case(b"nx") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") && !nx {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"get") {
            get = true;
        } else if opt.eq_ignore_ascii_case(b"keepttl") && expire.is_none() {
            keepttl = true;
        } else if let Some(u) = unit.filter(|&u| {
            // Another unit or KEEPTTL already given is a syntax error; the
            // same unit again just overrides (as in Redis).
            !keepttl && expire.is_none_or(|(prev, _)| prev == u) && has_next
        }) {
            expire = Some((u, arg(args, i + 1)));
            i += 1;
        } else {
            return write_error(cx.out, E_SYNTAX);
        }
        i += 1;
    }
    let expiry = match expire {
        Some((unit, raw)) => match deadline(cx.out, cx.store.now_ms(), unit, raw, "set") {
            Some(t) => Expiry::At(t),
            None => return,
        },
        None if keepttl => Expiry::Keep,
        None => Expiry::Persist,
    };
    let value = arg(args, 2);
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        if get {
            match slot.value() {
                Ok(Some(v)) => write_bulk(out, v),
                Ok(None) => write_null(out),
                Err(e) => return write_wrongtype(out, e),
            }
        }
        let exists = slot.exists();
        if (nx && exists) || (xx && !exists) {
            if !get {
                write_null(out);
            }
            return;
        }
        slot.set(value, expiry);
        if !get {
            out.extend_from_slice(OK);
        }
    });
}

fn setex_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], unit: Unit, cmd: &str) {
    let Some(t) = deadline(cx.out, cx.store.now_ms(), unit, arg(args, 2), cmd) else {
        return;
    };
    cx.store.set(arg(args, 1), arg(args, 3), Expiry::At(t));
    cx.out.extend_from_slice(OK);
}

fn setex<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    setex_generic(cx, args, Unit::Ex, "setex");
}

fn psetex<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    setex_generic(cx, args, Unit::Px, "psetex");
}

fn setnx<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let value = arg(args, 2);
    let created = cx.store.with_key(arg(args, 1), |slot| {
        if slot.exists() {
            false
        } else {
            slot.set(value, Expiry::Persist);
            true
        }
    });
    write_int(cx.out, i64::from(created));
}

fn getset<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let out = &mut *cx.out;
    let value = arg(args, 2);
    cx.store.with_key(arg(args, 1), |slot| {
        match slot.value() {
            Ok(Some(v)) => write_bulk(out, v),
            Ok(None) => write_null(out),
            Err(e) => return write_wrongtype(out, e),
        }
        slot.set(value, Expiry::Persist);
    });
}

fn mget<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let out = &mut *cx.out;
    write_array_header(out, args.len() - 1);
    for k in &args[1..] {
        // A key holding another type reads as nil here, as in Redis.
        cx.store.with_key(k.as_ref(), |slot| match slot.value() {
            Ok(Some(v)) => write_bulk(out, v),
            Ok(None) | Err(_) => write_null(out),
        });
    }
}

fn mset<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    if args.len().is_multiple_of(2) {
        return err_arity(cx.out, "mset");
    }
    cx.store.mset(&args[1..]);
    cx.out.extend_from_slice(OK);
}

fn del<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let n = args[1..]
        .iter()
        .filter(|k| cx.store.del(k.as_ref()))
        .count();
    write_int(cx.out, n as i64);
}

fn exists<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let n = args[1..]
        .iter()
        .filter(|k| cx.store.exists(k.as_ref()))
        .count();
    write_int(cx.out, n as i64);
}

fn incr_by(cx: &mut Cx<'_>, key: &[u8], delta: i64) {
    let out = &mut *cx.out;
    cx.store.with_key(key, |slot| {
        let current = match slot.value() {
            Ok(None) => 0,
            Ok(Some(v)) => match parse_i64(v) {
                Some(n) => n,
                None => return write_error(out, E_NOT_INT),
            },
            Err(e) => return write_wrongtype(out, e),
        };
        let Some(new) = current.checked_add(delta) else {
            return write_error(out, E_OVERFLOW);
        };
        let mut buf = [0u8; 21];
        slot.set(i64_bytes(new, &mut buf), Expiry::Keep);
        write_int(out, new);
    });
}

fn incr<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    incr_by(cx, arg(args, 1), 1);
}

fn decr<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    incr_by(cx, arg(args, 1), -1);
}

fn incrby<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    match parse_i64(arg(args, 2)) {
        Some(d) => incr_by(cx, arg(args, 1), d),
        None => write_error(cx.out, E_NOT_INT),
    }
}

fn decrby<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    match parse_i64(arg(args, 2)) {
        Some(i64::MIN) => write_error(cx.out, "ERR decrement would overflow"),
        Some(d) => incr_by(cx, arg(args, 1), -d),
        None => write_error(cx.out, E_NOT_INT),
    }
}

fn append<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let out = &mut *cx.out;
    let add = arg(args, 2);
    cx.store
        .with_key(arg(args, 1), |slot| match slot.value_mut() {
            Ok(Some(v)) => {
                if v.len() + add.len() > PROTO_MAX_BULK_LEN {
                    return write_error(out, E_TOO_BIG);
                }
                v.extend_from_slice(add);
                write_int(out, v.len() as i64);
            }
            Ok(None) => {
                slot.set(add, Expiry::Persist);
                write_int(out, add.len() as i64);
            }
            Err(e) => write_wrongtype(out, e),
        });
}

fn strlen<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let n = cx.store.with_key(arg(args, 1), |slot| {
        slot.value().map(|v| v.map_or(0, <[u8]>::len))
    });
    match n {
        Ok(n) => write_int(cx.out, n as i64),
        Err(e) => write_wrongtype(cx.out, e),
    }
}

fn type_cmd<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let kind = cx.store.with_key(arg(args, 1), |slot| slot.kind());
    write_simple(cx.out, kind.map_or("none", Kind::name));
}

// ---------------------------------------------------------------------------
// Keyspace

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with Redis 7's NX/XX/GT/LT.
fn expire_generic<A: AsRef<[u8]>>(
    cx: &mut Cx<'_>,
    args: &[A],
    seconds: bool,
    absolute: bool,
    cmd: &str,
) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        let opt = a.as_ref();
        if opt.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            lt = true;
        } else {
            let mut msg = b"ERR Unsupported option ".to_vec();
            msg.extend_from_slice(opt);
            return write_error_bytes(cx.out, &msg);
        }
    }
    if nx && (xx || gt || lt) {
        return write_error(
            cx.out,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        );
    }
    if gt && lt {
        return write_error(
            cx.out,
            "ERR GT and LT options at the same time are not compatible",
        );
    }
    let Some(mut when) = parse_i64(arg(args, 2)) else {
        return write_error(cx.out, E_NOT_INT);
    };
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return err_expire(cx.out, cmd);
        }
        when *= 1000;
    }
    let base = if absolute {
        0
    } else {
        cx.store.now_ms() as i64
    };
    let Some(when) = when.checked_add(base) else {
        return err_expire(cx.out, cmd);
    };
    let changed = cx.store.with_key(arg(args, 1), |slot| {
        if !slot.exists() {
            return false;
        }
        let current = slot.expires_at().map(|t| t as i64);
        if (nx && current.is_some())
            || (xx && current.is_none())
            || (gt && current.is_none_or(|c| when <= c))
            || (lt && current.is_some_and(|c| when >= c))
        {
            return false;
        }
        if when <= slot.now() as i64 {
            slot.remove();
        } else {
            slot.set_expiry(Some(when as u64));
        }
        true
    });
    write_int(cx.out, i64::from(changed));
}

fn expire<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    expire_generic(cx, args, true, false, "expire");
}

fn pexpire<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    expire_generic(cx, args, false, false, "pexpire");
}

fn expireat<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    expire_generic(cx, args, true, true, "expireat");
}

fn pexpireat<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    expire_generic(cx, args, false, true, "pexpireat");
}

/// The TTL family's reply: -2 for a missing key, -1 for one without a TTL,
/// else `of(deadline, slot)`.
fn expiry_reply<A: AsRef<[u8]>>(
    cx: &mut Cx<'_>,
    args: &[A],
    of: impl FnOnce(u64, &Slot<'_>) -> i64,
) {
    let reply = cx.store.with_key(arg(args, 1), |slot| {
        if !slot.exists() {
            return -2;
        }
        slot.expires_at().map_or(-1, |t| of(t, slot))
    });
    write_int(cx.out, reply);
}

fn ttl_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], ms: bool) {
    expiry_reply(cx, args, |t, slot| {
        let left = t.saturating_sub(slot.now()) as i64;
        if ms {
            left
        } else {
            (left + 500) / 1000
        }
    });
}

fn ttl<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    ttl_generic(cx, args, false);
}

fn pttl<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    ttl_generic(cx, args, true);
}

fn persist<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let changed = cx.store.with_key(arg(args, 1), |slot| {
        slot.expires_at().is_some() && slot.set_expiry(None)
    });
    write_int(cx.out, i64::from(changed));
}

fn keys<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let pattern = arg(args, 1);
    let all = pattern == b"*";
    let mut body = Vec::new();
    let mut n = 0;
    cx.store.for_each_key(|k| {
        if all || glob_match(pattern, k, false) {
            write_bulk(&mut body, k);
            n += 1;
        }
    });
    write_array_header(cx.out, n);
    cx.out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests;
