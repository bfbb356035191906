#!/usr/bin/env python3
"""Idle-connection memory: open N connections to a running server and report
the server's RSS growth per connection.

    bench/idle_conns.py --pid PID --addr 127.0.0.1:7000 --conns 10000
    bench/idle_conns.py --pid PID --addr 127.0.0.1:7443 --conns 5000 --tls   # handshakes done

Connections are spread over source addresses 127.0.0.1..127.0.0.K (--sources)
so one client is not limited by one address's ephemeral ports. A sample of
connections does an echo round trip before and after, to show they all work.
"""
import argparse, resource, socket, ssl, sys, time


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--source-base", type=int, default=1,
                    help="first source address is 127.0.0.<base> (127.0.<k>.x beyond 255)")
    ap.add_argument("--hold-until", default=None,
                    help="after opening, print 'ready' and hold the connections until this file exists")
    ap.add_argument("--tls", action="store_true",
                    help="TLS: every connection completes its handshake (no verification)")
    a = ap.parse_args()
    ctx = None
    if a.tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    host, port = a.addr.rsplit(":", 1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = rss_bytes(a.pid)
    socks = []
    t0 = time.monotonic()
    for i in range(a.conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        n = a.source_base + i % a.sources
        s.bind((f"127.0.{n // 250}.{1 + n % 250}", 0))
        s.settimeout(10)
        s.connect((host, int(port)))
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        socks.append(s)
    opened = time.monotonic() - t0
    # Every connection must be accepted and registered before we measure:
    # round trips on a sample, the last-opened among them.
    step = max(1, len(socks) // a.sample)
    sample = socks[::step] + [socks[-1]]
    for s in sample:
        s.sendall(b"ping")
        got = b""
        while len(got) < 4:
            b = s.recv(4 - len(got))
            if not b:
                sys.exit("connection closed by server")
            got += b
        assert got == b"ping"
    if a.hold_until:
        import os
        print(f"ready conns={a.conns} open_secs={opened:.2f}", flush=True)
        deadline = time.monotonic() + 600
        while not os.path.exists(a.hold_until) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Still alive after holding: a second round trip on the sample.
        for s in sample:
            s.sendall(b"pong")
            got = b""
            while len(got) < 4:
                b = s.recv(4 - len(got))
                if not b:
                    sys.exit("connection closed by server while held")
                got += b
            assert got == b"pong"
        print(f"held_ok sample={len(sample)}", flush=True)
        return
    after = rss_bytes(a.pid)
    per = (after - before) / a.conns
    print(f"conns={a.conns} open_secs={opened:.2f} rss_before={before} rss_after={after} "
          f"bytes_per_conn={per:.0f} sample_ok={len(sample)}")


if __name__ == "__main__":
    main()
