"""Why a discarding receiver slows a 16/128 KiB loopback sendall stream: count the receiver's
voluntary context switches (sleeps, each needing a wake-up from the sender) and recv calls
per MiB, with MSG_TRUNC against a copy into a page-aligned buffer. Sender pinned to CPU 1,
receiver to CPU 0 (as flushbench pins), CUBIC, interleaved rounds, fresh processes per trial.
python wakeups.py [rounds] [sizes...]"""
import ctypes, math, os, random, resource, socket, statistics, sys, time

PAGE = 4096
DUR = 0.3

def aligned(size):
    raw = bytearray(size + PAGE)
    addr = ctypes.addressof((ctypes.c_char * len(raw)).from_buffer(raw))
    start = (-addr) % PAGE
    return raw, memoryview(raw)[start:start + size]

def trial(size, mode):
    lst = socket.create_server(("127.0.0.1", 0)); addr = lst.getsockname()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {1}); os.close(r)
        s = socket.create_connection(addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
        head, body = b"h" * 4, b"b" * (size - 4)
        n = 0; ru0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter(); end = t0 + DUR
        while True:
            for _ in range(16):
                s.sendall(head); s.sendall(body)
            n += 16
            if time.perf_counter() > end: break
        dt = time.perf_counter() - t0; ru1 = resource.getrusage(resource.RUSAGE_SELF)
        s.shutdown(socket.SHUT_WR); s.recv(1)
        mib = n * size / 2**20
        os.write(w, f"{n * size * 8 / dt} {(ru1.ru_nvcsw - ru0.ru_nvcsw) / mib} {(ru1.ru_nivcsw-ru0.ru_nivcsw)/mib}".encode()); os._exit(0)
    os.close(w)
    os.sched_setaffinity(0, {0})
    c, _ = lst.accept()
    keep, view = aligned(65536)
    flags = socket.MSG_TRUNC if mode.startswith("discard") else 0
    spin = mode.endswith("spin")
    if spin:
        c.setblocking(False)
    if mode.endswith("lowat"):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 65536)
    calls = total = 0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    while True:
        try:
            k = c.recv_into(view, 65536, flags)
        except BlockingIOError:
            continue
        if not k: break
        calls += 1; total += k
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    c.close(); lst.close(); os.waitpid(pid, 0)
    bps, snd_vcsw, snd_ivcsw = map(float, os.read(r, 200).split()); os.close(r)
    mib = total / 2**20
    return bps, (ru1.ru_nvcsw - ru0.ru_nvcsw) / mib, calls / mib, total / calls, snd_vcsw, snd_ivcsw

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
sizes = [int(x) for x in sys.argv[2:]] or [16384, 131072, 1048576]
rng = random.Random(7)
MODES = tuple(os.environ.get("MODES", "copy discard copy-spin discard-spin").split())
configs = [(s, m) for s in sizes for m in MODES]
res = {c: [] for c in configs}
for _ in range(rounds):
    order = configs[:]; rng.shuffle(order)
    for c in order:
        res[c].append(trial(*c))
print("size    sink     Gbit/s  recv-sleeps/MiB  recvs/MiB  bytes/recv  sender-sleeps/MiB  sender-preempt/MiB (medians)")
for c in configs:
    cols = list(zip(*res[c]))
    med = [statistics.median(x) for x in cols]
    print(f"{c[0]:7d} {c[1]:12s} {med[0]/1e9:6.2f} {med[1]:16.1f} {med[2]:10.1f} {med[3]:11.0f} {med[4]:18.1f} {med[5]:18.1f}")
def ratio(a, b):
    d = [math.log(x[0] / y[0]) for x, y in zip(res[a], res[b])]
    m = statistics.mean(d); h = 2.2 * statistics.stdev(d) / math.sqrt(len(d))
    return f"{math.exp(m):.3f} [{math.exp(m-h):.3f}-{math.exp(m+h):.3f}]"
for s in sizes:
    for m in MODES[1:]:
        print(f"{s}: {m}/{MODES[0]} {ratio((s, m), (s, MODES[0]))}")
