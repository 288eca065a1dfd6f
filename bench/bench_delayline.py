"""Benchmark the TUN delay line: TCP throughput and ping-pong RTT across an emulated link.

    sudo PYTHONPATH=src python bench/bench_delayline.py --link delay=10ms

A server process runs in the lab's server namespace (started with ``ip netns exec`` via
``Netlab.popen``); a client process enters the client namespace itself with ``enter_netns``, as
pyperf workers do. Stream: one connection per run, plain ``sendall()`` of CHUNK-byte blocks until
BYTES are sent or TIME passes, then ``shutdown(SHUT_WR)``; the server counts every byte and
answers with the count, and only then does the clock stop. Ping-pong: 64-byte messages with
TCP_NODELAY on both ends, one at a time. Everything is bounded by count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time

from flushbench.netlab import Netlab, enter_netns

PING_SIZE = 64


def _server(lifetime: float) -> int:
    """Serve stream ('S') and ping-pong ('P') connections one after another."""
    lst = socket.socket()
    lst.bind(("0.0.0.0", 0))
    lst.listen(4)
    print(lst.getsockname()[1], flush=True)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        lst.settimeout(max(0.1, end - time.monotonic()))
        try:
            conn, _ = lst.accept()
        except TimeoutError:
            break
        conn.settimeout(30)
        with conn:
            mode = conn.recv(1)
            if mode == b"S":
                total = 0
                while n := conn.recv_into(view):
                    total += n
                conn.sendall(struct.pack("!Q", total))
            elif mode == b"P":
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while msg := conn.recv(PING_SIZE, socket.MSG_WAITALL):
                    conn.sendall(msg)
    return 0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = sock.recv(n, socket.MSG_WAITALL)
    if len(data) != n:
        raise ConnectionError(f"peer closed after {len(data)} of {n} bytes")
    return data


def _client(args: argparse.Namespace) -> int:
    enter_netns(args.ns)  # first thing: every socket below lives in the client namespace
    addr = (args.addr, args.port)
    runs = []
    block = memoryview(bytes(args.chunk))
    for _ in range(args.runs):
        with socket.create_connection(addr, timeout=30) as s:
            s.sendall(b"S")
            sent, t0 = 0, time.perf_counter()
            end = t0 + args.time
            while sent < args.bytes and time.perf_counter() < end:
                s.sendall(block)
                sent += len(block)
            s.shutdown(socket.SHUT_WR)
            (got,) = struct.unpack("!Q", _recv_exact(s, 8))
            elapsed = time.perf_counter() - t0
            assert got == sent, f"peer counted {got} bytes, {sent} were sent"
            runs.append({"bytes": got, "seconds": elapsed, "gbit_s": got * 8 / elapsed / 1e9})
    rtts = []
    with socket.create_connection(addr, timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"P")
        msg, end = bytes(PING_SIZE), time.perf_counter() + args.time
        while len(rtts) < args.pings and time.perf_counter() < end:
            t0 = time.perf_counter_ns()
            s.sendall(msg)
            _recv_exact(s, PING_SIZE)
            rtts.append((time.perf_counter_ns() - t0) / 1e6)
    rtts.sort()
    q = statistics.quantiles(rtts, n=100)
    print(json.dumps({"runs": runs, "rtt_ms": {"n": len(rtts), "min": rtts[0], "p50": q[49],
                                               "p90": q[89], "p99": q[98], "max": rtts[-1]}}))
    return 0


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].lower()]) if text[-1].isalpha() else int(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--link", default="delay=10ms", help="link spec or profile")
    p.add_argument("--bytes", type=_size, default=_size("1G"), help="stream bytes per run")
    p.add_argument("--time", type=float, default=8.0, help="time cap per run, seconds")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--chunk", type=_size, default=_size("1M"), help="sendall() size")
    p.add_argument("--pings", type=int, default=200)
    p.add_argument("--role", choices=("main", "server", "client"), default="main",
                   help=argparse.SUPPRESS)
    p.add_argument("--ns", help=argparse.SUPPRESS)
    p.add_argument("--addr", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "server":
        return _server(lifetime=args.runs * args.time + 60)
    if args.role == "client":
        return _client(args)

    with Netlab(args.link) as lab:
        print("\n".join(lab.describe()[:3]))
        server = lab.popen("server", [sys.executable, __file__, "--role", "server",
                                      "--runs", str(args.runs), "--time", str(args.time)],
                           stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        if not select.select([server.stdout], [], [], 10)[0]:
            raise SystemExit("the server did not start within 10 s")
        port = int(server.stdout.readline())
        client = [sys.executable, __file__, "--role", "client", "--ns", lab.client_ns,
                  "--addr", lab.server_addr, "--port", str(port)] + sys.argv[1:]
        out = subprocess.run(client, capture_output=True, text=True, check=False,
                             timeout=args.runs * (args.time + 35) + args.time + 35)
        if out.returncode:
            raise SystemExit(f"client failed: {out.stderr.strip()}")
        result = json.loads(out.stdout)
    cmd = " ".join(["PYTHONPATH=src", "python", *sys.argv])
    print(f"command: {cmd}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, kernel {os.uname().release}")
    for i, r in enumerate(result["runs"], 1):
        print(f"stream run {i}: {r['bytes'] / 2**20:.0f} MiB in {r['seconds']:.2f} s = "
              f"{r['gbit_s']:.2f} Gbit/s")
    best = max(r["gbit_s"] for r in result["runs"])
    median = statistics.median(r["gbit_s"] for r in result["runs"])
    rtt = result["rtt_ms"]
    target = "" if lab.spec.rate else ", target >= 1 Gbit/s"
    print(f"stream: median {median:.2f} Gbit/s, best {best:.2f} Gbit/s "
          f"(chunk {args.chunk} B{target})")
    print(f"ping-pong {PING_SIZE} B x {rtt['n']}: RTT p50 {rtt['p50']:.3f} ms, "
          f"p90 {rtt['p90']:.3f}, p99 {rtt['p99']:.3f}, min {rtt['min']:.3f}, "
          f"max {rtt['max']:.3f} ms (link RTT {lab.spec.rtt_s * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
