#!/usr/bin/env python3
"""Soak: mixed well-behaved and hostile traffic against `evnet http` and
`evnet resp` for minutes, one table row per minute (issue 17, point 5).

    cargo build --release --bin evnet && python3 bench/soak.py --out soak
    python3 bench/soak.py --proto resp --minutes 2 --seconds-per-row 10 \\
        --baseline-minutes 1 --out soak-try           # a quick look, ~3 min

For each protocol: a fresh server runs `--baseline-minutes` with the good
clients only (the baseline), then another fresh server runs `--minutes`
with the good clients and every hostile kind at once (the soak). The
server runs with its defaults (no timeout flags; the command is in the
report) on CPU 0; the clients run on CPU 1, the good ones in one process,
the hostile ones in another (niced, so they cannot delay the measurements
on the client side), each client a thread that reconnects until the end.

Good clients, whose errors and latency are reported:
  keep-alive  GOOD_KEEPALIVE connections, each GOOD_RATE requests/s
              (HTTP GET /plaintext; RESP SET then GET of its own small key)
  short       GOOD_SHORT clients, each SHORT_RATE connections/s: connect,
              one request, read the reply, close
Any unexpected close, wrong reply or reply slower than GOOD_TIMEOUT is an
error (the client reconnects and goes on).

Hostile clients (HOSTILE gives the count of each):
  slow     request BIG_BYTES (HTTP: a file under --root; RESP: GET of a
           value) with a small receive buffer and read SLOW_READ bytes every
           SLOW_EVERY s. BIG_BYTES is beyond what loopback socket buffers
           absorb (tcp_wmem max, 4 MB here), so the server holds the rest.
  loris    HTTP: a request line, then header bytes one per second, never
           ending the head; RESP: a multibulk SET whose value is announced
           and then trickled one byte per second
  garbage  random bytes every 0.1 s, replies read and dropped
  reset    request BIG_BYTES, read RESET_AFTER bytes, close with SO_LINGER 0
           (a RST) in the middle of the response
  flood    pipelined requests, a malformed one, then 64 KiB chunks without
           ever reading (at most FLOOD_RATE bytes/s, so the client's CPU
           stays bounded even if the server swallowed everything)

Every row: server RSS and open fds (median and peak of once-a-second
samples), server CPU (utime+stime) in the row, good
requests, errors, p50/p99/max latency, and per hostile kind the connections
opened and those the server ended (EOF or reset seen by the client; the
TSV also counts the resets alone).

Verdict (exit status 1 on FAIL): after the first row, RSS spread (max-min of
the row medians) within max(RSS_TOL_FRAC of the smallest, RSS_TOL_MIB)
and fds spread within FDS_TOL; no good-client error; the median over the
soak rows of each good kind's p99 within P99_LIMIT times the baseline's.

Writes bench/results/NAME.md (tables, verdict, commands) and NAME.tsv.
"""
import argparse
import multiprocessing as mp
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, CLIENT_CPU = 0, 1

# The client mix. Small fixed counts: the soak is about time, not load.
GOOD_KEEPALIVE, GOOD_RATE = 8, 25    # connections, requests/s each
GOOD_SHORT, SHORT_RATE = 4, 5        # clients, connections/s each
GOOD_TIMEOUT = 5.0                   # s: a slower reply is an error
HOSTILE = {"slow": 4, "loris": 8, "garbage": 4, "reset": 4, "flood": 2}
BIG_BYTES = 8 << 20                  # the slow readers' and resetters' response
SLOW_READ, SLOW_EVERY = 4096, 0.5    # bytes per read, seconds between reads
RESET_AFTER = 64 << 10               # bytes a resetter reads before its RST
FLOOD_RATE = 8 << 20                 # bytes/s per flooder, at most
START_TIMEOUT = 10.0

# The verdict's tolerances.
RSS_TOL_FRAC, RSS_TOL_MIB = 0.10, 8
FDS_TOL = 8
P99_LIMIT = 2.0

KINDS = list(HOSTILE)


def log(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- protocols


class Closed(Exception):
    """The server ended the connection (EOF)."""


def http_frame(buf):
    """Length of the first complete HTTP response in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise ValueError("response head over 64 KiB")
        return None
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return end + 4 + length


def resp_frame(buf):
    """Length of the first complete RESP reply (not an array) in buf, or None."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    kind = buf[:1]
    if kind in (b"+", b"-", b":"):
        return end + 2
    if kind == b"$":
        n = int(buf[1:end])
        return end + 2 if n < 0 else end + 2 + n + 2
    raise ValueError(f"unexpected reply {bytes(buf[:40])!r}")


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_bulk(v):
    return b"$%d\r\n%s\r\n" % (len(v), v)


class Http:
    name = "http"
    frame = staticmethod(http_frame)
    plaintext = b"GET /plaintext HTTP/1.1\r\nHost: soak\r\n\r\n"
    big_request = b"GET /big.bin HTTP/1.1\r\nHost: soak\r\n\r\n"

    def __init__(self, tmp):
        self.root = os.path.join(tmp, "root")

    def prepare(self):
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, "big.bin"), "wb") as f:
            f.write(os.urandom(BIG_BYTES))

    def server_args(self):
        return ["--root", self.root]

    def setup(self, addr):
        pass

    def good(self, idx, n):
        """(request, check) for keep-alive client idx's request n."""
        return self.plaintext, self.check

    def short(self):
        return self.plaintext, self.check

    @staticmethod
    def check(reply):
        if not reply.startswith(b"HTTP/1.1 200 ") or not reply.endswith(b"\r\n\r\nHello, World!"):
            raise ValueError(f"wrong reply {reply[:60]!r}...{reply[-20:]!r}")

    def loris(self):
        """What a slowloris sends at once, then the bytes it trickles."""
        return b"GET / HTTP/1.1\r\nHost: soak\r\n", b"X-Loris: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 1000

    def flood_prefix(self):
        return self.plaintext * 1000 + b"GARBAGE NOT HTTP\r\n\r\n"


class Resp:
    name = "resp"
    frame = staticmethod(resp_frame)
    big_request = resp_command("GET", "soak:big")
    short_value = b"short-connection-value"

    def __init__(self, tmp):
        pass

    def prepare(self):
        pass

    def server_args(self):
        return []

    def setup(self, addr):
        """Store the values the short connections, slow readers and
        resetters read."""
        s = socket.create_connection(addr, timeout=GOOD_TIMEOUT)
        big = (b"0123456789abcdef" * (BIG_BYTES // 16 + 1))[:BIG_BYTES]
        for cmd in (resp_command("SET", "soak:big", big), resp_command("SET", "soak:short", self.short_value)):
            s.sendall(cmd)
            buf = bytearray()
            reply = read_reply(s, buf, resp_frame, time.monotonic() + GOOD_TIMEOUT)
            if reply != b"+OK\r\n":
                raise RuntimeError(f"setup SET answered {reply[:60]!r}")
        s.close()

    def good(self, idx, n):
        # Even n: SET a fresh value; odd n: GET it back.
        value = b"v%d-%d-" % (idx, n - n % 2) + b"x" * 24
        key = b"soak:ka:%d" % idx
        if n % 2 == 0:
            return resp_command("SET", key, value), self.expect(b"+OK\r\n")
        return resp_command("GET", key), self.expect(resp_bulk(value))

    def short(self):
        return resp_command("GET", "soak:short"), self.expect(resp_bulk(self.short_value))

    @staticmethod
    def expect(want):
        def check(reply):
            if reply != want:
                raise ValueError(f"wrong reply {reply[:60]!r}, wanted {want[:60]!r}")
        return check

    def loris(self):
        return (resp_command("SET", "soak:loris", "x")[:-len("$1\r\nx\r\n")] + b"$1000000\r\n",
                b"y" * 1000000)

    def flood_prefix(self):
        return resp_command("PING") * 1000 + b"*x\r\n"


PROTOS = {"http": Http, "resp": Resp}


def read_reply(sock, buf, frame, deadline):
    """Read one whole message (per `frame`) into buf; return it and leave
    what follows in buf. Raises Closed, socket.timeout, ValueError."""
    while True:
        n = frame(buf) if buf else None
        if n is not None and len(buf) >= n:
            msg = bytes(buf[:n])
            del buf[:n]
            return msg
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete reply within %.0f s" % GOOD_TIMEOUT)
        sock.settimeout(left)
        data = sock.recv(1 << 16)
        if not data:
            raise Closed("server closed the connection")
        buf += data


def describe(e):
    if isinstance(e, socket.timeout):
        return f"timeout: {e}"
    return f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------- client processes


class Stats:
    """Counters and latency samples of one client process since the last
    snapshot (the threads add, the control loop takes)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.counts = {}
        self.lat = {}
        self.errors = []

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def ok(self, kind, secs):
        with self.lock:
            self.lat.setdefault(kind, []).append(secs)

    def error(self, kind, what):
        with self.lock:
            self.counts[kind + ".err"] = self.counts.get(kind + ".err", 0) + 1
            if len(self.errors) < 10:
                self.errors.append(f"{kind}: {what}")

    def snap(self):
        with self.lock:
            s = {"counts": self.counts, "lat": self.lat, "errors": self.errors}
            self.reset()
            return s


def connect(addr, timeout=GOOD_TIMEOUT, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # Before connect, so the window is small from the start (and the
        # kernel's receive autotuning is off for this socket).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    try:
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


def ended_by_server(e):
    return isinstance(e, (Closed, ConnectionResetError, BrokenPipeError, ConnectionAbortedError))


def exchange(sock, buf, proto, req, check, t0):
    """Send req, read and check its reply (nothing may follow it);
    the seconds since t0."""
    sock.sendall(req)
    reply = read_reply(sock, buf, proto.frame, t0 + GOOD_TIMEOUT)
    lat = time.monotonic() - t0
    check(reply)
    if buf:
        raise ValueError(f"{len(buf)} unexpected bytes after the reply")
    return lat


def keepalive_client(proto, addr, idx, st, stop):
    interval = 1.0 / GOOD_RATE
    next_t = time.monotonic() + random.random() * interval
    sock, buf, n = None, bytearray(), 0
    while not stop.is_set():
        wait = next_t - time.monotonic()
        if wait > 0 and stop.wait(wait):
            break
        # A fixed schedule; a late request does not make the next ones burst.
        next_t = max(next_t + interval, time.monotonic())
        try:
            if sock is None:
                sock, buf = connect(addr), bytearray()
            t0 = time.monotonic()
            st.ok("ka", exchange(sock, buf, proto, *proto.good(idx, n), t0))
            n += 1
        except Exception as e:
            if stop.is_set():
                break
            st.error("ka", describe(e))
            if sock is not None:
                sock.close()
            sock, n = None, n + n % 2  # RESP: start again with a SET
    if sock is not None:
        sock.close()


def short_client(proto, addr, idx, st, stop):
    interval = 1.0 / SHORT_RATE
    next_t = time.monotonic() + random.random() * interval
    while not stop.is_set():
        wait = next_t - time.monotonic()
        if wait > 0 and stop.wait(wait):
            break
        next_t = max(next_t + interval, time.monotonic())
        sock = None
        try:
            t0 = time.monotonic()
            sock = connect(addr)
            st.ok("short", exchange(sock, bytearray(), proto, *proto.short(), t0))
        except Exception as e:
            if not stop.is_set():
                st.error("short", describe(e))
        finally:
            if sock is not None:
                sock.close()


def hostile_loop(kind, pause, body):
    """Run body(sock) on fresh connections until stop; count the opens and
    the connections the server ended."""
    def run(proto, addr, idx, st, stop):
        while not stop.is_set():
            sock = None
            try:
                sock = connect(addr, rcvbuf=16384 if kind == "slow" else None)
                st.add(kind + ".open")
                body(proto, sock, st, stop)
            except Exception as e:
                if ended_by_server(e) and not stop.is_set():
                    st.add(kind + ".ended")
                    if isinstance(e, ConnectionResetError):
                        st.add(kind + ".rst")
                elif not isinstance(e, (OSError, ValueError)):
                    raise
            finally:
                if sock is not None:
                    sock.close()
            stop.wait(pause)
    return run


def slow_body(proto, sock, st, stop):
    """Read the big response a few KB at a time; ask again when it is all in."""
    while not stop.is_set():
        sock.sendall(proto.big_request)
        got, total, head = 0, None, bytearray()
        while not stop.is_set() and (total is None or got < total):
            if stop.wait(SLOW_EVERY):
                return
            sock.settimeout(0)
            try:
                data = sock.recv(SLOW_READ)
            except BlockingIOError:
                continue
            if not data:
                raise Closed()
            got += len(data)
            st.add("slow.bytes", len(data))
            if total is None:
                head += data
                total = proto.frame(head)
        st.add("slow.done")


def loris_body(proto, sock, st, stop):
    first, trickle = proto.loris()
    sock.sendall(first)
    for i in range(len(trickle)):
        sock.sendall(trickle[i:i + 1])
        # A second between bytes; whatever the server says (408, an error)
        # is read and dropped, EOF ends the connection.
        r, _, _ = select.select([sock], [], [], 1.0)
        if stop.is_set():
            return
        if r and not sock.recv(65536):
            raise Closed()


def garbage_body(proto, sock, st, stop):
    while not stop.is_set():
        sock.sendall(os.urandom(random.randint(256, 4096)))
        deadline = time.monotonic() + 0.1
        while (left := deadline - time.monotonic()) > 0:
            r, _, _ = select.select([sock], [], [], left)
            if r and not sock.recv(65536):
                raise Closed()


def reset_body(proto, sock, st, stop):
    sock.sendall(proto.big_request)
    got = 0
    deadline = time.monotonic() + GOOD_TIMEOUT
    while got < RESET_AFTER and time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            raise Closed()
        got += len(data)
    # SO_LINGER 0: close() sends a RST instead of a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def flood_body(proto, sock, st, stop):
    chunk = b"g" * 65536
    data, t0, sent = proto.flood_prefix(), time.monotonic(), 0
    sock.settimeout(1.0)  # send blocks when the server stops reading; wake to check stop
    while not stop.is_set():
        ahead = sent / FLOOD_RATE - (time.monotonic() - t0)
        if ahead > 0 and stop.wait(ahead):
            return
        try:
            n = sock.send(data)
        except socket.timeout:
            continue
        sent += n
        st.add("flood.bytes", n)
        data = data[n:] or chunk


HOSTILE_BODIES = {
    "slow": hostile_loop("slow", 0.5, slow_body),
    "loris": hostile_loop("loris", 0.5, loris_body),
    "garbage": hostile_loop("garbage", 0.2, garbage_body),
    "reset": hostile_loop("reset", 0.25, reset_body),
    "flood": hostile_loop("flood", 1.0, flood_body),
}


def client_process(role, proto_name, tmp, addr, ctl):
    """A client process: start the threads of `role`, answer the parent's
    'snap' with the stats since the last one, end on 'stop'."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        os.sched_setaffinity(0, {CLIENT_CPU})
    except OSError:
        pass
    if role == "hostile":
        os.nice(10)
    proto = PROTOS[proto_name](tmp)
    st, stop = Stats(), threading.Event()
    jobs = []
    if role == "good":
        jobs += [(keepalive_client, i) for i in range(GOOD_KEEPALIVE)]
        jobs += [(short_client, i) for i in range(GOOD_SHORT)]
    else:
        for kind, count in HOSTILE.items():
            jobs += [(HOSTILE_BODIES[kind], i) for i in range(count)]
    threads = [threading.Thread(target=f, args=(proto, addr, i, st, stop), daemon=True) for f, i in jobs]
    for t in threads:
        t.start()
    try:
        while True:
            cmd = ctl.recv()
            if cmd == "snap":
                ctl.send(st.snap())
            elif cmd == "stop":
                break
    except (EOFError, OSError):
        pass
    stop.set()
    for t in threads:
        t.join(timeout=3)
    try:
        ctl.send(st.snap())
    except OSError:
        pass


class Clients:
    """One client process as the parent sees it."""

    def __init__(self, role, proto_name, tmp, addr):
        self.ctl, child = mp.Pipe()
        self.proc = mp.get_context("fork").Process(
            target=client_process, args=(role, proto_name, tmp, addr, child), daemon=True)
        self.proc.start()

    def snap(self):
        self.ctl.send("snap")
        if not self.ctl.poll(10):
            raise RuntimeError("a client process did not answer")
        return self.ctl.recv()

    def stop(self):
        try:
            self.ctl.send("stop")
            if self.ctl.poll(10):
                self.ctl.recv()
        except (OSError, EOFError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# ---------------------------------------------------------------- the server


def proc_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # from field 3 (state) on


def cpu_ticks(pid):
    f = proc_fields(pid)
    return int(f[11]) + int(f[12])  # utime, stime: fields 14 and 15


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    def __init__(self, binary, proto, tmp, tag):
        self.cmd = ["taskset", "-c", str(SERVER_CPU), binary, proto.name,
                    "--addr", "127.0.0.1:0", "--loops", "0"] + proto.server_args()
        self.log_path = os.path.join(tmp, f"{proto.name}-{tag}.log")
        self.log = open(self.log_path, "w+")
        # taskset execs the server: the pid is the server's own.
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.addr = self.wait_addr()

    def wait_addr(self):
        """The address from the banner (`... listening on 127.0.0.1:PORT`
        or `http://127.0.0.1:PORT/`), as tests/util Child::spawn reads it."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                for line in f:
                    if "listening on" not in line:
                        continue
                    for w in line.split():
                        w = w.removeprefix("http://").rstrip("/")
                        host, _, port = w.rpartition(":")
                        if host and port.isdigit():
                            return host, int(port)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{' '.join(self.cmd)}: no address within {START_TIMEOUT:.0f} s: {self.tail()}")

    def alive(self):
        return self.proc.poll() is None

    def tail(self):
        with open(self.log_path) as f:
            return " | ".join(f.read().splitlines()[-5:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- a run


def pct(sorted_xs, p):
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, int(p / 100 * len(sorted_xs)))]


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def run_phase(binary, proto, tmp, phase, rows, row_secs):
    """One fresh server, the good clients (and for the soak the hostile
    ones), `rows` rows. Returns (server command, rows, error samples)."""
    server = Server(binary, proto, tmp, phase)
    log(f"{proto.name} {phase}: {' '.join(server.cmd)} on {server.addr[0]}:{server.addr[1]} (pid {server.pid})")
    clients = []
    out, errors = [], []
    try:
        proto.setup(server.addr)
        clients.append(Clients("good", proto.name, tmp, server.addr))
        if phase == "soak":
            clients.append(Clients("hostile", proto.name, tmp, server.addr))
        t0 = time.monotonic()
        ticks = cpu_ticks(server.pid)
        for row in range(rows):
            end = t0 + (row + 1) * row_secs
            # Once a second: connections come and go, so one sample at the
            # row's end would be noisy; a leak moves the median too.
            fds, rss = [], []
            while True:
                if not server.alive():
                    raise RuntimeError(f"the server exited (status {server.proc.returncode}): {server.tail()}")
                fds.append(open_fds(server.pid))
                rss.append(rss_kib(server.pid))
                left = end - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(1.0, left))
            snaps = [c.snap() for c in clients]
            now_ticks = cpu_ticks(server.pid)
            r = {"proto": proto.name, "phase": phase, "row": row + 1,
                 "t": round(time.monotonic() - t0), "rss_kib": median(rss), "rss_peak_kib": max(rss),
                 "fds": median(fds), "fds_peak": max(fds),
                 "cpu_s": (now_ticks - ticks) / CLK_TCK}
            r["cpu_pct"] = 100 * r["cpu_s"] / row_secs
            ticks = now_ticks
            counts, lat = {}, {}
            for s in snaps:
                for k, v in s["counts"].items():
                    counts[k] = counts.get(k, 0) + v
                for k, v in s["lat"].items():
                    lat.setdefault(k, []).extend(v)
                errors += [f"row {row + 1}: {e}" for e in s["errors"]]
            for kind in ("ka", "short"):
                xs = sorted(lat.get(kind, []))
                r[kind + "_req"] = len(xs)
                r[kind + "_err"] = counts.get(kind + ".err", 0)
                r[kind + "_p50_ms"] = ms(pct(xs, 50))
                r[kind + "_p99_ms"] = ms(pct(xs, 99))
                r[kind + "_max_ms"] = ms(xs[-1] if xs else None)
            for kind in KINDS:
                r[kind + "_open"] = counts.get(kind + ".open", 0)
                r[kind + "_ended"] = counts.get(kind + ".ended", 0)
                r[kind + "_rst"] = counts.get(kind + ".rst", 0)
            r["slow_done"] = counts.get("slow.done", 0)
            r["slow_kib"] = counts.get("slow.bytes", 0) // 1024
            r["flood_mib"] = counts.get("flood.bytes", 0) / (1 << 20)
            out.append(r)
            log(f"{proto.name} {phase} row {row + 1}/{rows}: RSS {r['rss_kib'] / 1024:.1f} MiB, "
                f"fds {r['fds']:g} (peak {r['fds_peak']}), CPU {r['cpu_pct']:.0f}%, "
                f"keep-alive {r['ka_req']} req {r['ka_err']} err p99 {fmt(r['ka_p99_ms'])} ms, "
                f"short {r['short_req']} {r['short_err']} err p99 {fmt(r['short_p99_ms'])} ms"
                + ("" if phase != "soak" else ", ended by server: " + ", ".join(
                    f"{k} {r[k + '_ended']}/{r[k + '_open']}" for k in KINDS)))
    finally:
        for c in clients:
            c.stop()
        server.stop()
    return " ".join(server.cmd), out, errors


def ms(secs):
    return None if secs is None else secs * 1000


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


# ---------------------------------------------------------------- report

TSV_FIELDS = ["proto", "phase", "row", "t", "rss_kib", "rss_peak_kib", "fds", "fds_peak", "cpu_s", "cpu_pct",
              "ka_req", "ka_err", "ka_p50_ms", "ka_p99_ms", "ka_max_ms",
              "short_req", "short_err", "short_p50_ms", "short_p99_ms", "short_max_ms"] + \
             [f"{k}_{w}" for k in KINDS for w in ("open", "ended", "rst")] + ["slow_done", "slow_kib", "flood_mib"]


def table(rows, hostile):
    head = ["row", "t s", "RSS MiB", "RSS peak", "fds", "fds peak", "CPU s", "CPU %",
            "keep-alive req", "err", "p50 ms", "p99 ms", "max ms",
            "short conns", "err", "p99 ms"]
    if hostile:
        head += [f"{k} opened/ended" for k in KINDS] + ["slow KiB read", "flood MiB sent"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rows:
        cells = [r["row"], r["t"], f"{r['rss_kib'] / 1024:.1f}", f"{r['rss_peak_kib'] / 1024:.1f}",
                 f"{r['fds']:g}", r["fds_peak"],
                 f"{r['cpu_s']:.2f}", f"{r['cpu_pct']:.1f}",
                 r["ka_req"], r["ka_err"], fmt(r["ka_p50_ms"]), fmt(r["ka_p99_ms"]), fmt(r["ka_max_ms"]),
                 r["short_req"], r["short_err"], fmt(r["short_p99_ms"])]
        if hostile:
            cells += [f"{r[k + '_open']}/{r[k + '_ended']}" for k in KINDS]
            cells += [r["slow_kib"], f"{r['flood_mib']:.0f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def verdict(base, soak, errors):
    """(lines, passed) for one protocol."""
    lines, ok = [], True

    def check(name, passed, detail):
        nonlocal ok
        ok &= passed
        lines.append(f"- {name}: **{'PASS' if passed else 'FAIL'}** — {detail}")

    later = soak[1:]
    if len(later) < 2:
        lines.append("- RSS and fds flat after the first row: not judged (fewer than 3 rows)")
    else:
        rss = [r["rss_kib"] / 1024 for r in later]
        tol = max(RSS_TOL_FRAC * min(rss), RSS_TOL_MIB)
        check("RSS flat after row 1", max(rss) - min(rss) <= tol,
              f"rows 2–{len(soak)}: row medians {min(rss):.1f}–{max(rss):.1f} MiB, spread {max(rss) - min(rss):.1f} MiB "
              f"(tolerance: {tol:.1f} MiB = max({RSS_TOL_FRAC:.0%} of the smallest, {RSS_TOL_MIB} MiB))")
        fds = [r["fds"] for r in later]
        check("open fds flat after row 1", max(fds) - min(fds) <= FDS_TOL,
              f"rows 2–{len(soak)}: row medians {min(fds):g}–{max(fds):g}, spread {max(fds) - min(fds):g} "
              f"(tolerance {FDS_TOL}); peaks within rows {min(r['fds_peak'] for r in later)}–"
              f"{max(r['fds_peak'] for r in later)}")
    n_err = sum(r["ka_err"] + r["short_err"] for r in soak)
    n_req = sum(r["ka_req"] + r["short_req"] for r in soak)
    check("good-client errors", n_err == 0, f"{n_err} errors in {n_req} good requests"
          + ("" if not errors else "; first: " + "; ".join(f"`{e}`" for e in errors[:5])))
    for kind, name in (("ka", "keep-alive p99"), ("short", "short-connection p99")):
        b = median(r[kind + "_p99_ms"] for r in base)
        s = median(r[kind + "_p99_ms"] for r in soak)
        if b is None or s is None:
            lines.append(f"- {name}: not judged (no baseline rows)")
            continue
        check(name, s <= P99_LIMIT * b,
              f"median of the soak rows {s:.2f} ms, baseline {b:.2f} ms, ratio {s / b:.2f} (limit {P99_LIMIT:.1f})")
    return lines, ok


def git_rev():
    try:
        return subprocess.run(["git", "-C", BENCH_DIR, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evnet", nargs="?", default=None,
                    help="the evnet binary (default: $EVNET, else target/release/evnet of this repository)")
    ap.add_argument("--proto", choices=["http", "resp", "both"], default="both")
    ap.add_argument("--minutes", type=float, default=10, help="soak length (default 10)")
    ap.add_argument("--baseline-minutes", type=float, default=2,
                    help="length of the run without hostile clients (default 2; 0: none)")
    ap.add_argument("--seconds-per-row", type=float, default=60, help="row length (default 60)")
    ap.add_argument("--out", default=os.environ.get("RESULT_NAME", "soak"),
                    help="write bench/results/OUT.md and OUT.tsv (default: $RESULT_NAME, else soak)")
    a = ap.parse_args()
    repo = os.path.dirname(BENCH_DIR)
    binary = os.path.abspath(a.evnet or os.environ.get("EVNET") or os.path.join(repo, "target", "release", "evnet"))
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: not found (cargo build --release --bin evnet)")
    rows = max(1, round(a.minutes * 60 / a.seconds_per_row))
    base_rows = round(a.baseline_minutes * 60 / a.seconds_per_row)
    protos = ["http", "resp"] if a.proto == "both" else [a.proto]
    try:
        os.sched_setaffinity(0, {CLIENT_CPU})
    except OSError:
        log(f"CPU {CLIENT_CPU} is not available: the clients run unpinned")
    total = len(protos) * (rows + base_rows) * a.seconds_per_row
    log(f"{', '.join(protos)}: {base_rows} baseline + {rows} soak rows of {a.seconds_per_row:g} s each, "
        f"about {total / 60:.0f} min")
    load_start = open("/proc/loadavg").read().split()[:3]
    started = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    md = [f"## soak: {' and '.join('evnet ' + p for p in protos)}", "",
          f"- date: {started}, evnet commit: {git_rev()}, host: {os.uname().release}, {os.cpu_count()} CPUs",
          f"- command: `python3 bench/soak.py {' '.join(sys.argv[1:])}`",
          f"- rows of {a.seconds_per_row:g} s: baseline {base_rows} rows with the good clients only, "
          f"then the soak, {rows} rows with every client, each on a fresh server",
          f"- server on CPU {SERVER_CPU} with its defaults (no timeout flags); "
          f"clients on CPU {CLIENT_CPU}, good and hostile in separate processes (hostile niced +10)",
          f"- good clients: {GOOD_KEEPALIVE} keep-alive × {GOOD_RATE} req/s, "
          f"{GOOD_SHORT} short-connection clients × {SHORT_RATE} conn/s; an error is an unexpected "
          f"close, a wrong reply or no reply within {GOOD_TIMEOUT:g} s",
          "- hostile clients: " + ", ".join(f"{n} {k}" for k, n in HOSTILE.items())
          + f"; big response {BIG_BYTES >> 20} MiB (slow readers read {SLOW_READ} B every {SLOW_EVERY:g} s; "
          f"resetters RST after {RESET_AFTER >> 10} KiB); flooders at most {FLOOD_RATE >> 20} MiB/s each",
          "- RSS and fds: median and peak of once-a-second samples in the row; CPU: the server's "
          "utime+stime in the row (% of one core)",
          "- opened/ended: connections a hostile kind opened / those the server ended (EOF or reset)", ""]
    all_rows, passed = [], True
    tmp = tempfile.mkdtemp(prefix="evnet-soak.")
    try:
        for name in protos:
            proto = PROTOS[name](tmp)
            proto.prepare()
            base, base_cmd = [], None
            if base_rows:
                base_cmd, base, _ = run_phase(binary, proto, tmp, "baseline", base_rows, a.seconds_per_row)
            cmd, soak, errors = run_phase(binary, proto, tmp, "soak", rows, a.seconds_per_row)
            lines, ok = verdict(base, soak, errors)
            passed &= ok
            all_rows += base + soak
            md += [f"### evnet {name}", "", f"Server: `{cmd}`", ""]
            if base:
                md += ["Baseline (good clients only):", ""] + table(base, False) + [""]
            md += ["Soak (good and hostile clients):", ""] + table(soak, True) + [""]
            md += [f"Verdict for evnet {name}: **{'PASS' if ok else 'FAIL'}**", ""] + lines + [""]
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    md += [f"- load average at start: {' '.join(load_start)}, at end: "
           f"{' '.join(open('/proc/loadavg').read().split()[:3])}", "",
           f"**{'PASS' if passed else 'FAIL'}**", ""]
    os.makedirs(RESULTS_DIR, exist_ok=True)
    md_path = os.path.join(RESULTS_DIR, a.out + ".md")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(RESULTS_DIR, a.out + ".tsv"), "w") as f:
        f.write("\t".join(TSV_FIELDS) + "\n")
        for r in all_rows:
            f.write("\t".join(str(round(r[k], 3) if isinstance(r[k], float) else ("" if r[k] is None else r[k]))
                              for k in TSV_FIELDS) + "\n")
    print("\n".join(md))
    log(f"wrote {md_path} and .tsv")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
