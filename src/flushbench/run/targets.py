"""Where a run's peer lives: this host, an emulated host (netlab) or a remote agent."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..case import LOCAL_ONLY
from ..errors import UsageError
from ..measure import unixsock
from ..measure.protocol import format_addr, new_ticket
from ..measure.sink import DEFAULT
from ..procs import PeerProcess
from .tlsca import RunCA


@dataclass
class Target:
    """Where the peer of a run lives: this host, an emulated host or a remote agent."""

    transport: str
    label: str = ""  # suffix of the run id when one invocation writes several runs
    peer_addr: str | None = None  # remote: the agent's HOST:PORT
    link: str | None = None  # emulated: the link spec

    def open(self, stack: contextlib.ExitStack, bind: str, token_file: Path | None = None,
             cpu: int | None = None, unix: bool = False, tls: RunCA | None = None,
             sink: str = DEFAULT) -> PeerLink:
        """Start or reach the peer (pinned to ``cpu`` where given); ``stack`` reaps it.

        ``unix``: the run has unix cases; a local peer also listens on an AF_UNIX socket in a
        private directory (removed with the peer: :class:`~flushbench.procs.PeerProcess`).
        ``tls``: the run has TLS cases; a local peer serves TLS with a certificate of this CA.
        ``sink``: how the peer takes in one-way data (measure/sink.py), an agent's peer too.

        Every peer wants a ticket in each data hello: a local one gets the run's (made here),
        an agent's peer its session's (sent by the agent); the workers get it from
        :func:`~.visits.run_visit`, on their stdin.
        """
        if self.transport == "remote":
            from ..remote.client import RemotePeer, read_token

            if tls is not None:
                raise UsageError("TLS cases (tls = true) need a local peer (loopback or --link): "
                                 "an agent's peer has no certificate; filter them out")
            if token_file is None:
                raise UsageError("--peer needs --token-file F, the agent's token (made with "
                                 "'flushbench agent --new-token F', copied to both hosts)")
            token = read_token(token_file)
            remote = stack.enter_context(RemotePeer(self.peer_addr or "", token, cpu=cpu,
                                                    sink=sink))
            return PeerLink(remote.addr, remote.meta, ticket=remote.ticket,
                            extra={"peer_addr": self.peer_addr, "peer_sink": remote.sink})
        prefix: list[str] = []
        link = PeerLink(("", 0), {}, ticket=new_ticket())  # one ticket for the run's peers
        if self.transport == "emulated":
            from ..netlab import Netlab

            lab = stack.enter_context(Netlab(self.link or "none"))
            bind = lab.server_addr
            prefix = [shutil.which("ip") or "ip", "netns", "exec", lab.server_ns]
            link.worker_args = ["--netns", lab.client_ns]
            link.extra = {"link": str(lab.spec), "netlab": lab.describe()}

        tls_cert = tls.server_cert(bind) if tls is not None else None
        if tls is not None:  # the workers trust this CA; meta.json keeps its fingerprint
            link.tls_ca, link.extra["tls_ca_sha256"] = tls.ca_path, tls.fingerprint

        def start() -> PeerProcess:
            started = stack.enter_context(PeerProcess(bind, cpu=cpu, prefix=prefix,
                                                      ticket=link.ticket, unix=unix,
                                                      tls_cert=tls_cert, sink=sink))
            return started

        peer = start()
        link.addr, link.meta, link.unix_path = peer.addr, peer.meta, peer.unix_path
        link.extra["peer_sink"] = peer.sink  # what it said it does (meta.json keeps it)

        def revive() -> None:  # a crashed local peer is restarted for the next case
            nonlocal peer
            if peer.proc.poll() is not None:
                peer = start()
                link.addr, link.unix_path = peer.addr, peer.unix_path

        link.revive = revive
        return link


@dataclass
class PeerLink:
    """A reachable peer: its address, its host's metadata, and how workers reach it."""

    addr: tuple[str, int]
    meta: dict[str, Any]
    worker_args: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    revive: Callable[[], None] | None = None  # restart a dead local peer (not for agents)
    ticket: str | None = None  # what each data hello must present (the workers get it)
    unix_path: str | None = None  # the local peer's AF_UNIX socket, for unix cases
    tls_ca: str | None = None  # the run's CA certificate (TLS cases): the workers trust it

    def peers(self) -> list[str]:
        """The ``--peer`` values of a worker: HOST:PORT, and unix:PATH where there is one."""
        return [format_addr(*self.addr)] + ([unixsock.format_unix(self.unix_path)]
                                            if self.unix_path else [])


def targets(peers: list[str], link: str | None, default_out: bool,
            meta: dict[str, Any] | None, transport: str = "loopback") -> list[Target]:
    """Where each run of one invocation goes: one run per ``--peer``, or one emulated or
    loopback run; a resumed run goes where it went. ``default_out``: no ``--out`` given.
    ``transport``: of a local run (``--transport``: loopback or unix)."""
    if meta is not None:  # resume: the same kind of peer as the run had
        return [Target(meta.get("transport", "loopback"), peer_addr=meta.get("peer_addr"),
                       link=meta.get("link"))]
    if peers and link:
        raise UsageError("--peer and --link exclude each other: a run goes to a remote agent "
                         "or to an emulated host")
    if transport in LOCAL_ONLY and (peers or link):
        raise UsageError(f"--transport {transport} runs on this host only: it excludes "
                         f"{'--peer' if peers else '--link'} (drop one of them)")
    if peers:
        return [Target("remote", label=_slug(p) if len(peers) > 1 or default_out else "",
                       peer_addr=p) for p in peers]
    if link:
        return [Target("emulated", link=link)]
    return [Target(transport)]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-")
