#!/usr/bin/env python3
"""The never-reading flooder against `evnet http --loops 0`, for two builds.

A client pipelines 100,000 GET requests without reading a response (so the
replies cannot drain), sends a malformed request (the server answers 400 and
decides to close), then keeps sending 64 KiB chunks for 10 s. Printed per
build: what the client got to send (about what the server read), when the
connection was reset, and the server's CPU time over the run.

    taskset -c 1 bench/closing_flood.py BASE_EVNET NEW_EVNET

The server is pinned to CPU 0.
"""
import socket, subprocess, sys, time, os
def run(binary, secs=10):
    s0 = socket.socket(); s0.bind(('127.0.0.1', 0)); port = s0.getsockname()[1]; s0.close()
    p = subprocess.Popen(['taskset','-c','0',binary,'http','--addr',f'127.0.0.1:{port}','--loops','0'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = socket.create_connection(('127.0.0.1', port), timeout=1); break
        except OSError: time.sleep(0.05)
    c.settimeout(0.5)
    req = b'GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n' * 1000
    sent = 0; t0 = time.time(); cut = None
    # pipelined requests never read, then garbage, then a flood
    payloads = [req] * 100 + [b'GARBAGE NOT HTTP\r\n\r\n']
    chunk = b'g' * 65536
    while time.time() - t0 < secs:
        data = payloads.pop(0) if payloads else chunk
        try:
            sent += c.send(data)
        except socket.timeout:
            continue
        except OSError as e:
            cut = time.time() - t0; break
    with open(f'/proc/{p.pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    p.terminate(); p.wait()
    return sent, cut, cpu
for name, b in [('base', sys.argv[1]), ('new', sys.argv[2])]:
    sent, cut, cpu = run(b)
    print(f'{name}: client sent {sent/1e6:.1f} MB, reset after {cut if cut is None else round(cut,2)} s, server CPU {cpu:.2f} s over the run')
