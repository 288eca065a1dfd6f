"""A user-written strategy, loaded with --strategy-plugin plugin_strategy:RecordingStrategy.

It is the README's worked example plus a record of what each worker saw, for the tests.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence

from flushbench import Strategy
from flushbench.measure.strategies import Buffer


class RecordingStrategy(Strategy):
    name = "recording"
    summary = "writev-style: one sendmsg per message (a plugin used by the tests)"

    def __init__(self, sock: socket.socket, buffer: int = 0) -> None:
        super().__init__(sock, buffer)
        self.recorded = False

    def send_message(self, parts: Sequence[Buffer]) -> None:
        if not self.recorded:
            self.recorded = True
            path = os.environ.get("FLUSHBENCH_TEST_RECORD")
            if path:
                with open(path, "a") as fh:
                    fh.write(json.dumps({
                        "pid": os.getpid(), "buffer": self.buffer,
                        "nodelay": self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                    }) + "\n")
        total = sum(map(len, parts))
        sent = self.sock.sendmsg(parts)
        self.calls += 1
        if sent != total:
            self.sock.sendall(b"".join(parts)[sent:])
            self.calls += 1
