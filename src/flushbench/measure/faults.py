"""Fault injection for the peer, so tests can prove a failed case never stops a run.

Set ``FLUSHBENCH_PEER_FAULT=KIND:WORKLOAD:MSG_SIZE:VALUE`` in the environment of
``flushbench run`` (the peer inherits it). When a connection of that workload and message
size reaches its VALUE-th GO frame (1 = the first, warm-up included), the peer:

    crash  exits at once (the whole peer process dies, as with kill -9)
    stall  stops reading and answering (bounded: it lets go after STALL_SECONDS)
    reset  aborts the connection with a TCP RST

Unset (the normal case) it costs one dictionary lookup per connection.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass

ENV = "FLUSHBENCH_PEER_FAULT"
KINDS = ("crash", "stall", "reset")
STALL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    workload: str
    msg_size: int
    value: int

    @classmethod
    def from_env(cls) -> Fault | None:
        text = os.environ.get(ENV, "")
        if not text:
            return None
        bits = text.split(":")
        if len(bits) != 4 or bits[0] not in KINDS or not bits[2].isdigit() \
                or not bits[3].isdigit():
            raise ValueError(f"{ENV}={text!r}: expected KIND:WORKLOAD:MSG_SIZE:VALUE with KIND "
                             f"one of {', '.join(KINDS)}")
        return cls(bits[0], bits[1], int(bits[2]), int(bits[3]))

    def matches(self, workload: str, msg_size: int) -> bool:
        return self.workload == workload and self.msg_size == msg_size

    def strike(self, conn: socket.socket) -> None:
        """Do the fault on ``conn``; returns only for 'stall' once it lets go."""
        if self.kind == "crash":
            os._exit(3)
        if self.kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            raise ConnectionResetError("fault injected: reset")
        time.sleep(STALL_SECONDS)
        raise TimeoutError("fault injected: stall over")
