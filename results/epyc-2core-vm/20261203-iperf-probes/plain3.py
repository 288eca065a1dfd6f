import sys, socket, time, os
sys.path.insert(0, "/work/main/src")
from flushbench.case import Case
from flushbench.measure.loops import make_parts
port=int(sys.argv[1]); secs=float(sys.argv[2])
parts = make_parts(Case("stream", "sendmsg", 131072, ops=1 << 20)); total=131072
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(None)
end=time.perf_counter()+secs; sent=0; t0=time.perf_counter()
while time.perf_counter()<end:
    for _ in range(64):
        k=s.sendmsg(parts); assert k==total; sent+=k
print(8*sent/(time.perf_counter()-t0)/1e9, "Gbit/s")
