"""Where a run's peer lives: this host, an emulated host (netlab) or a remote agent."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .peer import PeerProcess

if TYPE_CHECKING:
    from .runner import RunOptions


@dataclass
class Target:
    """Where the peer of a run lives: this host, an emulated host or a remote agent."""

    transport: str
    label: str = ""  # suffix of the run id when one invocation writes several runs
    peer_addr: str | None = None  # remote: the agent's HOST:PORT
    link: str | None = None  # emulated: the link spec

    def open(self, stack: contextlib.ExitStack, opts: RunOptions, bind: str) -> PeerLink:
        """Start or reach the peer."""
        if self.transport == "remote":
            from .agent_client import RemotePeer, read_token

            token = read_token(opts.token_file) if opts.token_file else None
            remote = stack.enter_context(RemotePeer(self.peer_addr or "", token,
                                                    cpu=opts.pin.get("peer")))
            return PeerLink(remote.addr, remote.meta, extra={"peer_addr": self.peer_addr})
        prefix: list[str] = []
        link = PeerLink(("", 0), {})
        if self.transport == "emulated":
            from .netlab import Netlab

            lab = stack.enter_context(Netlab(self.link or "none"))
            bind = lab.server_addr
            prefix = [shutil.which("ip") or "ip", "netns", "exec", lab.server_ns]
            link.worker_args = ["--netns", lab.client_ns]
            link.extra = {"link": str(lab.spec), "netlab": lab.describe()}

        def start() -> PeerProcess:
            return stack.enter_context(PeerProcess(bind, cpu=opts.pin.get("peer"), prefix=prefix))

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
    revive: Any = None  # callable: restart a dead local peer (None for remote agents)


def targets(opts: RunOptions, meta: dict[str, Any] | None) -> list[Target]:
    if meta is not None:  # resume: the same kind of peer as the run had
        return [Target(meta.get("transport", "loopback"), peer_addr=meta.get("peer_addr"),
                       link=meta.get("link"))]
    if opts.peers and opts.link:
        raise UsageError("--peer and --link exclude each other: a run goes to a remote agent "
                         "or to an emulated host")
    if opts.peers:
        return [Target("remote", label=_slug(p) if len(opts.peers) > 1 or opts.out is None
                       else "", peer_addr=p) for p in opts.peers]
    if opts.link:
        return [Target("emulated", link=opts.link)]
    return [Target("loopback")]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-")
