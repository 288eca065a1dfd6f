import sys, os, socket, random, time, json, math, statistics, subprocess, multiprocessing
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main/src")
import bench_iperf as B
from flushbench.case import Case
from flushbench.measure.loops import make_parts
pairs=int(sys.argv[1]); nbytes=int(sys.argv[2])*131072; out=sys.argv[3]
cc, sc = 1, 0
parts = make_parts(Case("stream", "sendmsg", 131072, ops=1 << 20))
lst = socket.create_server(("127.0.0.1", 0))
rec = multiprocessing.get_context("fork").Process(target=B._plain_receiver, args=(lst, sc), daemon=True); rec.start()
srv = subprocess.Popen(["taskset","-c",str(sc),"iperf3","-s","-p","5399"], stdout=subprocess.DEVNULL)
time.sleep(0.5)
os.sched_setaffinity(0, {cc})
def py():
    n = nbytes // 131072
    with socket.create_connection(lst.getsockname()) as s:
        s.settimeout(None); t0=time.perf_counter()
        for _ in range(n):
            assert s.sendmsg(parts) == 131072
        s.shutdown(socket.SHUT_WR); got=int.from_bytes(s.recv(8),"big"); el=time.perf_counter()-t0
    assert got == n*131072
    return 8*got/el
def ip():
    r = subprocess.run(["taskset","-c",str(cc),"iperf3","-c","127.0.0.1","-p","5399","-l","128K","-n",str(nbytes),"-J"], capture_output=True, text=True)
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]
rows=[]; rng=random.Random(7)
try:
    for i in range(pairs):
        order=["ip","py"]; rng.shuffle(order); g={}
        for j in order: g[j]=py() if j=="py" else ip()
        rows.append(g)
finally:
    srv.kill(); rec.kill()
json.dump(rows, open(out,"w"))
lr=[math.log(r["py"]/r["ip"]) for r in rows]
m=statistics.fmean(lr); sd=statistics.stdev(lr); se=sd/math.sqrt(len(lr))
print(f"pairs {len(lr)} geomean {math.exp(m):.3f} [{math.exp(m-1.98*se):.3f}-{math.exp(m+1.98*se):.3f}] sd/pair {sd:.3f}; ip median {statistics.median(r['ip'] for r in rows)/1e9:.2f} py {statistics.median(r['py'] for r in rows)/1e9:.2f}")
