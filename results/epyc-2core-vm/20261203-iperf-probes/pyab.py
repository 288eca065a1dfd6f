import sys, os, socket, random, time, json, math, statistics, multiprocessing, mmap, select
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main/src")
import bench_iperf as B
from flushbench.case import Case
from flushbench.measure.loops import make_parts
pairs=int(sys.argv[1]); n=int(sys.argv[2]); A,Bn=sys.argv[3],sys.argv[4]
cc, sc = 1, 0
parts = make_parts(Case("stream", "sendmsg", 131072, ops=1 << 20)); whole=b"".join(parts)
m = mmap.mmap(-1, 131072); m[:] = whole; mv = memoryview(m)
bufs={"bytes":parts, "mmap":[mv[:4], mv[4:]], "bytes1":[whole], "mmap1":[mv]}
lst = socket.create_server(("127.0.0.1", 0))
rec = multiprocessing.get_context("fork").Process(target=B._plain_receiver, args=(lst, sc), daemon=True); rec.start()
os.sched_setaffinity(0, {cc})
def run(kind):
    p = bufs[kind.replace("nb_","")]
    with socket.create_connection(lst.getsockname()) as s:
        t0=time.perf_counter()
        if kind.startswith("nb_"):
            s.setblocking(False); fd=s.fileno(); sent=0; goal=n*131072
            whole_mv = memoryview(b"".join(bytes(x) for x in p))
            off=0
            while sent < goal:
                select.select([], [s], [])
                for _ in range(10):
                    try: k=s.send(whole_mv[off:] if off else whole_mv)
                    except BlockingIOError: break
                    sent+=k; off=(off+k)%131072
                    if sent>=goal: break
            s.setblocking(True)
        else:
            s.settimeout(None)
            for _ in range(n):
                assert s.sendmsg(p) == 131072
        s.shutdown(socket.SHUT_WR); got=int.from_bytes(s.recv(8),"big"); el=time.perf_counter()-t0
    return 8*got/el
rows=[]; rng=random.Random(7)
for i in range(pairs):
    order=[A,Bn]; rng.shuffle(order); g={}
    for j in order: g[j]=run(j)
    rows.append(g)
rec.kill()
lr=[math.log(r[Bn]/r[A]) for r in rows]
m_=statistics.fmean(lr); sd=statistics.stdev(lr); se=sd/math.sqrt(len(lr))
print(f"{Bn}/{A} pairs {len(lr)} geomean {math.exp(m_):.3f} [{math.exp(m_-1.98*se):.3f}-{math.exp(m_+1.98*se):.3f}] sd/pair {sd:.3f}; medians {statistics.median(r[A] for r in rows)/1e9:.2f} {statistics.median(r[Bn] for r in rows)/1e9:.2f}")
