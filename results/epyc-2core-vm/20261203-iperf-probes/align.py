import sys, os, socket, random, time, mmap, math, statistics, multiprocessing, json
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main/src")
import bench_iperf as B
from flushbench.case import Case
from flushbench.measure.loops import make_parts

SIZE = 131072
def loop(addr, bufs, seconds, use_send):
    total = sum(len(b) for b in bufs)
    with socket.create_connection(addr, timeout=30) as sock:
        sock.settimeout(None)
        sent, start = 0, time.perf_counter(); end = start + seconds
        while time.perf_counter() < end:
            for _ in range(64):
                if use_send:
                    k = sock.send(bufs[0])
                else:
                    k = sock.sendmsg(bufs)
                if k < total:
                    sock.sendall(b"".join(bytes(b) for b in bufs)[k:])
                sent += total
        sock.shutdown(socket.SHUT_WR); sock.settimeout(30)
        got = int.from_bytes(sock.recv(8), "big")
        el = time.perf_counter() - start
    assert got == sent
    return 8 * sent / el

case = Case("stream", "sendmsg", SIZE, ops=1 << 20)
parts = make_parts(case)
whole = b"".join(parts)
m = mmap.mmap(-1, SIZE); m[:] = whole; mv = memoryview(m)
m2 = mmap.mmap(-1, SIZE + 4096); m2[60:60+SIZE] = whole; mv2 = memoryview(m2)[60:60+SIZE]
jobs = {
 "bytes_p2": (parts, False),
 "bytes_1": ([whole], True),
 "mmap_p2": ([mv[:4], mv[4:]], False),
 "mmap_1": ([mv], True),
 "mmap60_p2": ([mv2[:4], mv2[4:]], False),
}
print({k: [hex(0) for b in v[0]] for k,v in jobs.items()} and "ok")
cpus = sorted(os.sched_getaffinity(0)); cc, sc = cpus[-1], cpus[0]
lst = socket.create_server(("127.0.0.1", 0))
rec = multiprocessing.get_context("fork").Process(target=B._plain_receiver, args=(lst, sc), daemon=True); rec.start()
os.sched_setaffinity(0, {cc})
rounds = int(sys.argv[1]); rng = random.Random(1)
rows = []
for r in range(rounds):
    names = ["iperf3", *jobs]; rng.shuffle(names); got = {}
    for n in names:
        if n == "iperf3": got[n] = B.iperf3_bps(SIZE, 1, cc, sc)
        else: got[n] = loop(lst.getsockname(), jobs[n][0], 1.0, jobs[n][1])
    rows.append(got)
    print(r, "  ".join(f"{k} {v/1e9:.2f}" for k, v in sorted(got.items())), flush=True)
rec.kill()
json.dump(rows, open(sys.argv[2], "w"))
for n in jobs:
    rat = [row[n] / row["iperf3"] for row in rows]
    print(n, "vs iperf3 geomean", round(B.geomean_interval(rat)[0],3), [round(x,3) for x in B.geomean_interval(rat)[1:]])
for n in jobs:
    if n == "bytes_p2": continue
    rat = [row[n] / row["bytes_p2"] for row in rows]
    print(n, "vs bytes_p2", round(B.geomean_interval(rat)[0],3), [round(x,3) for x in B.geomean_interval(rat)[1:]])
