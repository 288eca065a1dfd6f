"""9 identical sendall 'cases' interleaved in slots; one connection per case vs fresh per value.
Between-case spread of trial means vs what the values' noise predicts."""
import math, os, random, statistics, sys, time
sys.path.insert(0, "/work/main/src")
from flushbench.case import Case, parse_size
from flushbench.measure.session import Session
from flushbench.procs import PeerProcess
size = parse_size(sys.argv[1]); mode = sys.argv[2]; trials = int(sys.argv[3]); K = 9; V = 8
case = Case("stream", "sendall", size, ops=20000)
cpus = sorted(os.sched_getaffinity(0)); rng = random.Random(3)
with PeerProcess("127.0.0.1", cpu=cpus[0]) as peer:
    os.sched_setaffinity(0, {cpus[-1]})
    s0 = Session.connect(case, peer.addr, 10.0, peer.ticket)
    for _ in range(4):
        N = s0.ops_for(case.op_count, 0.01); s0.run_value(N, record=False)
    N = s0.ops_for(case.op_count, 0.01); s0.close()
    ratios = []
    for t in range(trials):
        logs = [[] for _ in range(K)]
        ss = [Session.connect(case, peer.addr, 10.0, peer.ticket) for _ in range(K)] if mode == "one" else None
        for v in range(V):
            order = list(range(K)); rng.shuffle(order)
            for i in order:
                s = ss[i] if ss else Session.connect(case, peer.addr, 10.0, peer.ticket)
                e = s.run_value(N, record=False); logs[i].append(math.log(e / N))
                if not ss: s.close()
        if ss:
            for s in ss: s.close()
        means = [statistics.fmean(x) for x in logs]
        within = statistics.fmean(statistics.stdev(x) for x in logs)
        # slot-paired: median over slots of case i vs case 0
        sm = [statistics.median(a - b for a, b in zip(logs[i], logs[0])) for i in range(1, K)]
        print(f"{size} {mode} trial {t}: between-case sd {statistics.stdev(means)*100:5.1f}%  predicted {within/math.sqrt(V)*100:5.1f}%  slot-median vs case0 sd {statistics.stdev(sm)*100:5.1f}%", flush=True)
