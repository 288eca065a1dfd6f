"""Emulated hosts: two network namespaces joined by an emulated link (the `emulated` transport).

    Netlab("wan-20ms")                      # profile from profiles.toml
    Netlab("rate=100mbit,delay=10ms,loss=0.1%")

``delay`` and ``jitter`` are one-way and applied in each direction (delay=10ms: 20 ms RTT).
The client namespace ``fb-N-cli`` holds ``198.18.x.1``, the server namespace ``fb-N-srv`` holds
``198.18.x.2``; each lab gets its own /30 of 198.18.0.0/15 (RFC 2544's benchmarking range).

- rate only: a veth pair, rate with ``tbf`` on both ends;
- delay / jitter / loss: ``netem`` on the veth where the kernel has it, else the TUN packet
  delay line (:mod:`flushbench.netlab.delayline`): one relay process, one TUN device per namespace.

Lifecycle (records and clean-up: :mod:`.state`): a record ``/run/flushbench/N.json`` is written
*before* anything is created; teardown (``__exit__``, exceptions, SIGINT, SIGTERM, SIGHUP,
atexit) kills the relay and every process left in the namespaces, then deletes the namespaces
and their links, trying every step: failures end in one :class:`TeardownError` and a kept
record. A lab whose owner died is removed by :meth:`Netlab.cleanup_stale`; its relay has
already exited, as the owner's *lifeline* pipe closed. ``netlab up`` makes a persistent lab.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import procs
from ..errors import SetupError, UsageError
from . import delayline
from .linkspec import LinkSpec
from .netns import NETNS_DIR, check_support, in_netns, netns_socket, run, start_time, tool
from .state import (
    PREFIX,
    STATE_DIR,
    cleanup_stale,
    destroy,
    list_labs,
    read_states,
    state_path,
    write_state,
)
from .teardown import Steps, TeardownError, program, remove_namespaces, report

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import TypeAlias

    # what signal.signal() returns: the handler it replaced
    _Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

NET_BASE = int(ipaddress.IPv4Address("198.18.0.0"))
SLOTS = 1 << 15  # /30 subnets in 198.18.0.0/15
TUN_MTU = 65000  # few, large packets: a Python relay then moves Gbit/s
TCP_BUF_MAX = 32 << 20  # tcp_rmem/tcp_wmem max in the namespaces: covers 1 Gbit/s x 80 ms RTT

# ------------------------------------------------------------------------------ Netlab

_netem_ok: bool | None = None  # probed once per process


def _on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `with Netlab(...)`: teardown runs


class Netlab:
    """Two namespaces joined by an emulated link; a context manager that always cleans up."""

    def __init__(self, spec: LinkSpec | str = "none", name: str | None = None, *,
                 backend: str = "auto", tcp_buf_max: int | None = TCP_BUF_MAX,
                 persistent: bool = False, seed: int | None = None) -> None:
        self.spec = spec if isinstance(spec, LinkSpec) else LinkSpec.parse(spec)
        if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,9}", name):
            raise UsageError(f"bad lab name {name!r}: expected 1-10 of a-z, 0-9, '-'")
        if backend not in ("auto", "veth", "netem", "tun"):
            raise UsageError(f"bad backend {backend!r}: expected auto, veth, netem or tun")
        if backend == "veth" and self.spec.needs_delay_line:
            raise UsageError("backend veth cannot emulate delay, jitter or loss")
        self.backend = backend if backend != "auto" or self.spec.needs_delay_line else "veth"
        self._wanted_name, self.tcp_buf_max, self.persistent = name, tcp_buf_max, persistent
        self.seed = seed
        self.slot = -1
        self.name = self.client_ns = self.server_ns = self.client_addr = self.server_addr = ""
        self._made: list[str] = []  # namespaces this lab may delete: never someone else's
        self._own_record = False
        self._procs: list[subprocess.Popen[Any]] = []
        self._relay: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._state: dict[str, Any] = {}
        self._handlers: dict[int, _Handler] = {}
        self._started = self._closed = False

    # -- lifecycle
    def __enter__(self) -> Netlab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # a teardown failure must not hide the exception on its way out
            self._close_reporting()

    def start(self) -> Netlab:
        """Build the lab; on any failure (or signal) everything made so far is removed."""
        if self._started:
            raise UsageError(f"lab {self.name} was already started")
        self._started = True
        check_support(tun=self.backend == "tun")
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) is signal.SIG_DFL:
                    self._handlers[sig] = signal.signal(sig, _on_signal)
        atexit.register(self._close_reporting)
        try:
            try:
                cleanup_stale()
            except TeardownError as exc:  # another lab's leftovers do not stop this one
                report(exc)
            self._reserve()
            self._build()
        except BaseException:
            self._close_reporting()
            raise
        return self

    def close(self) -> None:
        """Kill what runs in the lab, delete the namespaces and the record (idempotent).

        Every step is tried even when an earlier one fails; then TeardownError lists the
        failures, one line each, and the record stays, marked failed (the lab is stale: the
        next clean-up or ``flushbench netlab down NAME`` tries again)."""
        if self._closed:
            return
        self._closed = True
        # A second Ctrl-C (or a SIGTERM) must not cut the teardown short: hold such signals
        # back and deliver them once everything is gone.
        held: list[int] = []
        saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                saved[sig] = signal.signal(sig, lambda signum, frame: held.append(signum))
        try:
            failures = self._teardown()
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
            self._release()
        error = TeardownError(failures) if failures else None
        if held:
            if error:
                report(error)
            signal.raise_signal(held[0])
        if error:
            raise error

    def _teardown(self) -> list[str]:
        """Every step, in order, whatever fails: returns the failures (one line each)."""
        steps = Steps(self.name)
        for proc in self._procs:
            steps(f"stop process {proc.pid} ({program(proc)})", procs.stop, proc, 2.0)
        if self._lifeline is not None:  # the relay exits by itself once this pipe closes
            steps("close the relay's lifeline", os.close, self._lifeline)
            self._lifeline = None
        if self._relay:
            steps(f"stop the delay-line relay (pid {self._relay.pid})", procs.stop, self._relay,
                  2.0)
        remove_namespaces(steps, self._made)
        if self._own_record and steps.failures:
            steps("keep the lab's record", self._save, failed=steps.failures)
        elif self._own_record:  # drop the record, its log and temporary file
            for path in (state_path(self.slot), state_path(self.slot).with_suffix(".log"),
                         self._tmp_path()):
                steps(f"remove {path}", path.unlink, True)
        return steps.failures

    def _close_reporting(self) -> None:
        """close(), printing a teardown failure instead of raising it."""
        try:
            self.close()
        except TeardownError as exc:
            report(exc)

    def detach(self) -> None:
        """Leave a persistent lab running (``netlab up``); ``destroy(name)`` removes it."""
        if not self.persistent:
            raise UsageError("only a persistent lab can be detached")
        self._save(persistent=True)  # from now on never stale: its owner is about to exit
        self._closed = True
        self._release()

    def _release(self) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers.clear()
        atexit.unregister(self._close_reporting)

    def _reserve(self) -> None:
        """Claim a slot by creating its state file atomically (link() fails if it exists)."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        taken = {s["name"] for s in read_states()}
        if self._wanted_name and PREFIX + self._wanted_name in taken:
            raise UsageError(f"a lab named {PREFIX + self._wanted_name} already exists")
        for slot in range(SLOTS):
            name = PREFIX + (self._wanted_name or str(slot))
            foreign = [ns for ns in (f"{name}-cli", f"{name}-srv") if (NETNS_DIR / ns).exists()]
            if foreign and self._wanted_name:  # someone else's namespace: never ours to delete
                raise UsageError(f"namespace {foreign[0]} exists but is no flushbench lab: "
                                 "choose another --name")
            if name in taken or foreign:
                continue
            base = NET_BASE + 4 * slot
            self.slot, self.name = slot, name
            self.client_ns, self.server_ns = f"{name}-cli", f"{name}-srv"
            self.client_addr = str(ipaddress.IPv4Address(base + 1))
            self.server_addr = str(ipaddress.IPv4Address(base + 2))
            self._state = {"name": name, "slot": slot, "link": str(self.spec),
                           "backend": self.backend, "client_ns": self.client_ns,
                           "server_ns": self.server_ns, "client_addr": self.client_addr,
                           "server_addr": self.server_addr, "persistent": False,
                           "namespaces": [self.client_ns, self.server_ns],
                           "owner_pid": os.getpid(), "owner_start": start_time(os.getpid()),
                           "relay_pid": None, "relay_start": None, "created": time.time()}
            tmp = self._tmp_path()
            try:
                tmp.write_text(json.dumps(self._state))
                os.link(tmp, state_path(slot))
                self._made = [self.client_ns, self.server_ns]  # ours to delete from now on
                self._own_record = True
                return
            except FileExistsError:
                self.slot = -1
            finally:
                tmp.unlink(missing_ok=True)
        raise SetupError(f"no free lab slot under {STATE_DIR}: run 'flushbench netlab down --all'")

    def _save(self, **changes: Any) -> None:
        self._state.update(changes)
        write_state(self._state)

    def _tmp_path(self) -> Path:
        return STATE_DIR / f".{os.getpid()}.{self.slot}.tmp"

    # -- building
    def _build(self) -> None:
        for ns in (self.client_ns, self.server_ns):
            try:
                run("ip", "netns", "add", ns)
            except SetupError:  # e.g. made by someone else meanwhile: not ours to delete
                self._made.remove(ns)
                self._save(namespaces=self._made)
                raise
            run("ip", "link", "set", "lo", "up", ns=ns)
            if self.tcp_buf_max:
                in_netns(ns, self._set_tcp_buffers)
        if self.backend in ("veth", "auto", "netem") and self._build_veth():
            return
        self.backend = "tun"
        self._save(backend="tun")
        check_support(tun=True)
        self._build_tun()

    def _set_tcp_buffers(self) -> None:
        for key, low in (("tcp_rmem", "4096 131072"), ("tcp_wmem", "4096 16384")):
            Path(f"/proc/sys/net/ipv4/{key}").write_text(f"{low} {self.tcp_buf_max}\n")

    def _build_veth(self) -> bool:
        """veth pair + tbf, or + netem; False when netem is missing and auto may fall back."""
        global _netem_ok
        spec = self.spec
        if self.backend == "auto" and _netem_ok is False:
            return False
        if (spec.rate or spec.needs_delay_line) and tool("tc") is None:
            raise SetupError("the emulated transport needs tc (iproute2) for rate/delay")
        dev = {self.client_ns: f"fbv{self.slot}c", self.server_ns: f"fbv{self.slot}s"}
        run("ip", "link", "add", dev[self.client_ns], "netns", self.client_ns, "type", "veth",
             "peer", "name", dev[self.server_ns], "netns", self.server_ns)
        for ns, addr in ((self.client_ns, self.client_addr), (self.server_ns, self.server_addr)):
            mtu = ["mtu", str(spec.mtu)] if spec.mtu else []
            run("ip", "-batch", "-", ns=ns, stdin=f"addr add {addr}/30 dev {dev[ns]}\n"
                 f"link set dev {dev[ns]} {' '.join(mtu)} up\n")
            if spec.needs_delay_line:
                delay = ["delay", f"{spec.delay}us", f"{spec.jitter}us"]
                extra = [*(["loss", f"{spec.loss}%"] if spec.loss else []),
                         *(["rate", f"{spec.rate}bit"] if spec.rate else [])]
                p = subprocess.run([tool("tc") or "tc", "-n", ns, "qdisc", "add", "dev", dev[ns],
                                    "root", "netem", *delay, *extra, "limit", "10000"],
                                   capture_output=True, text=True, timeout=30)
                _netem_ok = p.returncode == 0
                if not _netem_ok:
                    if self.backend == "netem":
                        raise SetupError(f"netem is not available: {p.stderr.strip()}")
                    run("ip", "link", "del", dev[ns], ns=ns)  # removes both ends
                    return False
                self.backend = "netem"
            elif spec.rate:
                burst = max(spec.rate // 8000, 16384)  # 1 ms of the rate, at least 16 KiB
                limit = delayline.backlog_cap(spec.rate, 0.0, spec.mtu or 1500)
                run("tc", "qdisc", "add", "dev", dev[ns], "root", "tbf", "rate",
                     f"{spec.rate}bit", "burst", str(burst), "limit", str(limit), ns=ns)
        self._save(backend=self.backend)
        return True

    def _build_tun(self) -> None:
        spec, mtu = self.spec, self.spec.mtu or TUN_MTU
        ends = ((self.client_ns, f"fbt{self.slot}c", self.client_addr, self.server_addr),
                (self.server_ns, f"fbt{self.slot}s", self.server_addr, self.client_addr))
        fds: list[int] = []
        ready_r, ready_w = os.pipe()
        try:
            for ns, dev, local, peer in ends:
                if Path(f"/sys/class/net/{dev}").exists():  # never take over someone's device
                    raise SetupError(f"a network device {dev} exists already: remove it")
                fds.append(delayline.open_tun(dev))  # made here, then moved: no root-ns leftovers
                run("ip", "link", "set", "dev", dev, "netns", ns)
                run("ip", "-batch", "-", ns=ns, stdin=(
                    f"link set dev {dev} mtu {mtu} txqueuelen 1000 addrgenmode none\n"
                    f"addr add {local} peer {peer} dev {dev}\nlink set dev {dev} up\n"))
            argv = [sys.executable, "-I", delayline.__file__, "--fds", f"{fds[0]},{fds[1]}",
                    "--delay", repr(spec.delay / 1e6), "--jitter", repr(spec.jitter / 1e6),
                    "--loss", repr(spec.loss / 100), "--rate", str(spec.rate),
                    "--mtu", str(mtu), "--ready", str(ready_w)]
            if self.seed is not None:
                argv += ["--seed", str(self.seed)]
            keep = [*fds, ready_w]
            if not self.persistent:  # the relay exits when this pipe's write end closes
                lifeline_r, self._lifeline = os.pipe()
                argv += ["--lifeline", str(lifeline_r)]
                keep.append(lifeline_r)
            with state_path(self.slot).with_suffix(".log").open("ab") as log:
                self._relay = subprocess.Popen(argv, pass_fds=keep, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=log,
                                               start_new_session=True)
            if not self.persistent:
                os.close(lifeline_r)
            pid = self._relay.pid
            self._save(relay_pid=pid, relay_start=start_time(pid))
        finally:
            for fd in (*fds, ready_w):
                os.close(fd)
        try:
            ok = select.select([ready_r], [], [], 10.0)[0] and os.read(ready_r, 16) == b"ready\n"
        finally:
            os.close(ready_r)
        if not ok:
            log_text = state_path(self.slot).with_suffix(".log").read_text().strip()
            raise SetupError("the delay-line relay did not start: "
                             + (log_text.splitlines() or ["no message"])[-1])

    # -- using
    def _ns(self, ns: str) -> str:
        return {"client": self.client_ns, "server": self.server_ns}.get(ns, ns)

    def popen(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start *argv* inside namespace *ns* ('client', 'server' or a name); the lab kills
        and reaps it on teardown."""
        name = self._ns(ns)
        if name not in (self.client_ns, self.server_ns):
            raise UsageError(f"{ns!r} is not a namespace of lab {self.name}")
        proc = subprocess.Popen([tool("ip") or "ip", "netns", "exec", name, *argv], **kw)
        self._procs.append(proc)
        return proc

    def socket(self, ns: str, family: int = socket.AF_INET,
               type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket created inside namespace *ns* ('client', 'server' or a name)."""
        return netns_socket(self._ns(ns), family, type)

    @property
    def relay_pid(self) -> int | None:
        return self._relay.pid if self._relay else None

    def describe(self) -> list[str]:
        """Human-readable lines: what the lab is and how to use it."""
        return [f"lab {self.name}: link {self.spec} via {self.backend}"
                + (f" (relay pid {self.relay_pid})" if self.relay_pid else ""),
                f"  client {self.client_ns} {self.client_addr}",
                f"  server {self.server_ns} {self.server_addr}",
                f"  try: ip netns exec {self.client_ns} ping -c 3 {self.server_addr}"]

    cleanup_stale = staticmethod(cleanup_stale)
    destroy = staticmethod(destroy)
    list_labs = staticmethod(list_labs)
