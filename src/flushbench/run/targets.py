"""Where a run's peer lives: this host, an emulated host (netlab) or a remote agent."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..measure.protocol import new_ticket
from ..procs import PeerProcess


@dataclass
class Target:
    """Where the peer of a run lives: this host, an emulated host or a remote agent."""

    transport: str
    label: str = ""  # suffix of the run id when one invocation writes several runs
    peer_addr: str | None = None  # remote: the agent's HOST:PORT
    link: str | None = None  # emulated: the link spec

    def open(self, stack: contextlib.ExitStack, bind: str, token_file: Path | None = None,
             cpu: int | None = None) -> PeerLink:
        """Start or reach the peer (pinned to ``cpu`` where given); ``stack`` reaps it.

        Every peer wants a ticket in each data hello: a local one gets the run's (made here),
        an agent's peer its session's (sent by the agent); the workers get it from
        :func:`~.visits.run_visit`, on their stdin.
        """
        if self.transport == "remote":
            from ..remote.client import RemotePeer, read_token

            if token_file is None:
                raise UsageError("--peer needs --token-file F, the agent's token (made with "
                                 "'flushbench agent --new-token F', copied to both hosts)")
            token = read_token(token_file)
            remote = stack.enter_context(RemotePeer(self.peer_addr or "", token, cpu=cpu))
            return PeerLink(remote.addr, remote.meta, extra={"peer_addr": self.peer_addr},
                            ticket=remote.ticket)
        prefix: list[str] = []
        link = PeerLink(("", 0), {}, ticket=new_ticket())  # one ticket for the run's peers
        if self.transport == "emulated":
            from ..netlab import Netlab

            lab = stack.enter_context(Netlab(self.link or "none"))
            bind = lab.server_addr
            prefix = [shutil.which("ip") or "ip", "netns", "exec", lab.server_ns]
            link.worker_args = ["--netns", lab.client_ns]
            link.extra = {"link": str(lab.spec), "netlab": lab.describe()}

        def start() -> PeerProcess:
            started = stack.enter_context(PeerProcess(bind, cpu=cpu, prefix=prefix,
                                                      ticket=link.ticket))
            return started

        peer = start()
        link.addr, link.meta = peer.addr, peer.meta

        def revive() -> None:  # a crashed local peer is restarted for the next case
            nonlocal peer
            if peer.proc.poll() is not None:
                peer = start()
                link.addr = peer.addr

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


def targets(peers: list[str], link: str | None, default_out: bool,
            meta: dict[str, Any] | None) -> list[Target]:
    """Where each run of one invocation goes: one run per ``--peer``, or one emulated or
    loopback run; a resumed run goes where it went. ``default_out``: no ``--out`` given."""
    if meta is not None:  # resume: the same kind of peer as the run had
        return [Target(meta.get("transport", "loopback"), peer_addr=meta.get("peer_addr"),
                       link=meta.get("link"))]
    if peers and link:
        raise UsageError("--peer and --link exclude each other: a run goes to a remote agent "
                         "or to an emulated host")
    if peers:
        return [Target("remote", label=_slug(p) if len(peers) > 1 or default_out else "",
                       peer_addr=p) for p in peers]
    if link:
        return [Target("emulated", link=link)]
    return [Target("loopback")]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-")
