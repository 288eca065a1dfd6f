"""Does the kernel's copy care where the user buffer sits in its page?

Sender: sendall of 1 MiB from an mmap at page offset K. Receiver: recv_into a buffer at page
offset J. Loopback, pinned (sender CPU 1, receiver CPU 0). Configs interleaved in rounds.
"""
import mmap, os, random, socket, sys, time

SIZE = 1 << 20
VALUE_S = 0.2


def receiver(port_w, j_list_r):
    ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(64)
    os.write(port_w, ls.getsockname()[1].to_bytes(2, "big"))
    os.sched_setaffinity(0, {0})
    area = mmap.mmap(-1, SIZE + 8192)
    while True:
        c, _ = ls.accept()
        j = int.from_bytes(c.recv(2, socket.MSG_WAITALL), "big")
        if j == 65535:
            return
        view = memoryview(area)[j:j + SIZE]
        while True:
            k = c.recv_into(view)
            if not k:
                break
        c.close()


def main():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            receiver(w, None)
        finally:
            os._exit(0)
    port = int.from_bytes(os.read(r, 2), "big")
    os.sched_setaffinity(0, {1})
    area = mmap.mmap(-1, SIZE + 8192)
    area[:] = os.urandom(len(area))
    configs = [(k, j) for k in (0, 48, 64, 4064, 4088) for j in (0, 16, 48, 64, 2048)]  # the second run; the first: k in (0, 16, 4080), j in (0, 8, 16, 32, 64, 4080)
    res = {c: [] for c in configs}
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    for rnd in range(rounds):
        random.shuffle(configs)
        for k, j in configs:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(j.to_bytes(2, "big"))
            src = memoryview(area)[k:k + SIZE]
            for _ in range(20):
                s.sendall(src)
            t0 = time.perf_counter(); n = 0
            while time.perf_counter() - t0 < VALUE_S:
                s.sendall(src); n += 1
            dt = time.perf_counter() - t0
            s.close()
            res[(k, j)].append(n * SIZE * 8 / dt / 1e9)
    s = socket.create_connection(("127.0.0.1", port)); s.sendall((65535).to_bytes(2, "big")); s.close()
    os.waitpid(pid, 0)
    import statistics as st
    for c in sorted(res):
        v = res[c]
        print(f"K={c[0]:5d} J={c[1]:5d}  median {st.median(v):6.1f} Gbit/s  values {' '.join(f'{x:.0f}' for x in v)}")


main()
