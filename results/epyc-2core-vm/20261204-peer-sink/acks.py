"""Segments the client receives (ACKs) per MiB sent, stream sendall, with either peer sink."""
import os, random, statistics, sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3] / "src"))
from flushbench.case import Case
from flushbench.measure import sockopts
from flushbench.measure.session import Session
from flushbench.procs import PeerProcess

os.sched_setaffinity(0, {1})
peers = {s: PeerProcess(sink=s, cpu=0) for s in ("discard", "copy")}
res = {(s, z): [] for s in peers for z in (16384, 131072, 1 << 20)}
try:
    for rnd in range(6):
        for size in (16384, 131072, 1 << 20):
            for s in random.sample(list(peers), 2):
                p = peers[s]
                sess = Session.connect(Case("stream", "sendall", size), p.addr, 10.0, p.ticket,
                                       cc="cubic")
                try:
                    n = max(1, int(0.2 * 3e9 / 8 / size))
                    i0 = sockopts.tcp_info(sess.sock)
                    t0 = time.perf_counter()
                    for _ in range(5):
                        sess.run_value(n)
                    dt = time.perf_counter() - t0
                    i1 = sockopts.tcp_info(sess.sock)
                    mib = 5 * n * size / 2**20
                    res[(s, size)].append(((i1["segs_in"] - i0["segs_in"]) / mib,
                                           5 * n * size * 8 / dt / 1e9))
                finally:
                    sess.close()
finally:
    for p in peers.values():
        p.close()
for (s, z), v in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"{z:8d} {s:8s} segments in per MiB: median {statistics.median(a for a, _ in v):6.1f}"
          f"  Gbit/s median {statistics.median(b for _, b in v):5.1f}")
