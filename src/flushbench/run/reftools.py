"""The reference tools beside flushbench: iperf3 and sockperf, run, parsed and reaped.

Each run starts its tool's server on a free port (waited for until it listens, always
reaped, also on failure) and its client with a time limit. :class:`Tools` runs them once per
round of a calibration and records every figure with its round (``flushbench calibrate``,
:mod:`.calibrate`). On loopback, or in a netlab's namespaces (:class:`Place`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import procs
from ..case import CC_NAME
from ..errors import SetupError

if TYPE_CHECKING:
    from ..netlab import Netlab

INSTALL_HINT = "apt-get install iperf3 sockperf"
IPERF3_MAX_STREAMS = 128  # iperf3 -P refuses more
SOCKPERF_SIZES = (14, 65507)  # the message sizes sockperf ping-pong takes (-m)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def whole_seconds(seconds: float) -> int:
    """iperf3 and sockperf take whole seconds (iperf3 -t 0 would run forever)."""
    return max(1, round(seconds))


def tool_status() -> dict[str, str | None]:
    return {name: shutil.which(name) for name in ("iperf3", "sockperf")}


@dataclass
class Place:
    """Where the reference tools run: loopback, or server and client in a netlab's namespaces."""

    host: str = "127.0.0.1"
    server_prefix: list[str] = field(default_factory=list)
    client_prefix: list[str] = field(default_factory=list)
    lab: Netlab | None = None
    pinned: bool = False  # taskset in the prefixes

    @classmethod
    def of(cls, lab: Netlab | None, pin: dict[str, int]) -> Place:
        """Loopback or ``lab``'s namespaces; the client tool on ``pin["client"]``, the
        server on ``pin["peer"]`` (where flushbench's workers and peer run), via taskset."""
        place = cls()
        if lab is not None:
            ip = shutil.which("ip") or "ip"
            place = cls(lab.server_addr, [ip, "netns", "exec", lab.server_ns],
                        [ip, "netns", "exec", lab.client_ns], lab)
        taskset = shutil.which("taskset")
        for role, prefix in (("peer", place.server_prefix), ("client", place.client_prefix)):
            if taskset and role in pin:
                prefix += [taskset, "-c", str(pin[role])]
                place.pinned = True
        return place

    def probe(self, port: int) -> bool:
        """A connection to the server: only where /proc cannot say (see :func:`listening`)."""
        try:
            sock = self.lab.socket("client") if self.lab else socket.socket()
            with sock:
                sock.settimeout(0.2)
                sock.connect((self.host, port))
            return True
        except OSError:
            return False


def listening(pid: int, port: int) -> bool | None:
    """Whether a TCP socket listens on ``port`` in the network namespace of process ``pid``
    (``ip netns exec`` execs the tool: its pid is in the lab's namespace); None when /proc
    cannot tell. Asked without connecting: iperf3's server takes a probe connection for a
    test, and a client arriving while it drops that test is reset (1 run in 8 with -P 4)."""
    found = None
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        found = False
        for line in lines:
            fields = line.split()  # sl local_address rem_address st ...; 0A = LISTEN
            if len(fields) > 3 and fields[3] == "0A" and \
                    int(fields[1].rpartition(":")[2], 16) == port:
                return True
    return found


@contextlib.contextmanager
def server(argv: list[str], port: int, place: Place) -> Iterator[None]:
    """A reference tool's server, waited for until it listens, always reaped."""
    proc = subprocess.Popen([*place.server_prefix, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not (ready := listening(proc.pid, port)):
            if ready is None and place.probe(port):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"{argv[0]} server did not start on {place.host}:{port}")
            time.sleep(0.02)
        yield
    finally:
        procs.stop(proc)


def client(argv: list[str], seconds: float) -> tuple[str, str]:
    """A tool's client run to its end (stdout, stderr), stopped ``seconds`` + 30 s in; reaped
    also on Ctrl-C (subprocess.run leaves a child it killed on KeyboardInterrupt unreaped)."""
    name = next((a for a in argv if a in ("iperf3", "sockperf")), argv[0])
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            return proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            raise SetupError(f"{name} did not finish within {seconds + 30:.0f} s") from None
        finally:
            procs.stop(proc)


CC_SHAPE = re.compile(CC_NAME)  # what iperf3's JSON says it used: kept only if name-shaped


def iperf3(size: int, seconds: float, place: Place, streams: int = 1, cc: str = ""
           ) -> tuple[float, int, str]:
    """iperf3's received bits per second (the sum over ``streams`` parallel connections)
    with writes of ``size`` bytes, the number of streams its JSON reports, and the sender's
    congestion control it reports ("" where it does not); ``cc`` sets that (``-C``; "": the
    host's default)."""
    port = free_port()
    # no -1: where /proc cannot tell, the readiness probe uses up the test a -1 server takes
    with server(["iperf3", "-s", "-B", place.host, "-p", str(port)], port, place):
        stdout, stderr = client([*place.client_prefix, "iperf3", "-c", place.host, "-p",
                                 str(port), "-l", str(size), "-t", str(whole_seconds(seconds)),
                                 "-P", str(streams), *(["-C", cc] if cc else []), "-J"],
                                seconds)
    data: Any = None
    with contextlib.suppress(ValueError):
        data = json.loads(stdout)
    try:
        reported = data["end"].get("sender_tcp_congestion")
        return (float(data["end"]["sum_received"]["bits_per_second"]),
                len(data["end"]["streams"]),
                reported if isinstance(reported, str) and CC_SHAPE.fullmatch(reported) else "")
    except (KeyError, TypeError, ValueError) as exc:
        why = data.get("error") if isinstance(data, dict) else None
        said = " ".join(stderr.split())[:200]
        raise SetupError(f"iperf3 gave no result ({why or exc!r})" +
                         (f": {said}" if said else "")) from None


_PCT = re.compile(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)")


def sockperf(size: int, seconds: float, place: Place) -> dict[str, float]:
    """sockperf ping-pong full-RTT percentiles (µs) for ``size``-byte messages over TCP."""
    port = free_port()
    with server(["sockperf", "server", "-i", place.host, "-p", str(port), "--tcp"], port, place):
        stdout, stderr = client([*place.client_prefix, "sockperf", "ping-pong", "-i",
                                 place.host, "-p", str(port), "--tcp", "-m", str(size), "-t",
                                 str(whole_seconds(seconds)), "--full-rtt"], seconds)
    text = re.sub(r"\x1b\[[0-9;]*m", "", stdout + stderr)
    pct = {float(q): float(v) for q, v in _PCT.findall(text)}
    if 50.0 not in pct:
        raise SetupError(f"sockperf gave no percentiles: {' '.join(text.split())[-200:]}")
    return {"p50": pct[50.0], "p90": pct.get(90.0, float("nan")),
            "p99": pct.get(99.0, float("nan"))}


@dataclass
class Tools:
    """The reference tools, run once per round; every figure recorded with its round."""

    place: Place
    sizes: list[int]
    rr_size: int
    seconds: float
    conns: int = 1
    cc: str = ""  # iperf3's sender congestion control, as flushbench's clients ("": host's)
    have: dict[str, str | None] = field(default_factory=tool_status)
    say: Callable[[str], None] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stream_counts(self) -> list[int]:
        """iperf3's -P: 1, and --conns where it is more (and iperf3 can run it)."""
        return [n for n in sorted({1, self.conns}) if n <= IPERF3_MAX_STREAMS]

    def run_round(self, round_: int, rounds: int) -> None:
        said = []
        if self.have["iperf3"]:
            for size in self.sizes:
                for n in self.stream_counts:
                    row = self._one(round_, "iperf3", size, n, self._iperf3(size, n))
                    said.append(f"iperf3 -l {size}" + (f" -P {n}" if n > 1 else "") + ": " +
                                (f"{row['throughput_bps'] / 1e9:.2f} Gbit/s"
                                 if not row["error"] else "failed"))
        if self.have["sockperf"]:
            row = self._one(round_, "sockperf", self.rr_size, 1, lambda: {
                f"rtt_{q}_us": v for q, v in sockperf(self.rr_size, self.seconds,
                                                      self.place).items()})
            said.append(f"sockperf {self.rr_size} B: " + (
                f"p50 {row['rtt_p50_us']:.1f} us, p99 {row['rtt_p99_us']:.1f} us"
                if not row["error"] else "failed"))
        if self.say is not None and said:
            self.say(f"round {round_ + 1}/{rounds} reference: " + "; ".join(said))

    def _iperf3(self, size: int, streams: int) -> Callable[[], dict[str, Any]]:
        def measure() -> dict[str, Any]:
            bps, reported, cc = iperf3(size, self.seconds, self.place, streams, self.cc)
            return {"throughput_bps": bps, "streams": reported, "cc": cc}
        return measure

    def _one(self, round_: int, tool: str, size: int, conns: int,
             measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        row: dict[str, Any] = {"tool": tool, "round": round_, "msg_size": size, "conns": conns,
                               "at": time.time(), "error": ""}
        try:
            row.update(measure())
        except (SetupError, OSError) as exc:  # one round without this figure; the rest pair
            row["error"] = " ".join(str(exc).split())[:300]
        self.rows.append(row)
        return row
