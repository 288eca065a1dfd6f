"""The project's own exceptions: OS and protocol errors are mapped to these at the edges.

Every message is one line that names what was wrong and what to do; the CLI prints it
without a traceback and exits non-zero.
"""

from __future__ import annotations


class FlushbenchError(Exception):
    """Base class: a user-facing, one-line error."""


class UsageError(FlushbenchError):
    """Bad input from the user: a suite file, an option, a path."""


class SetupError(FlushbenchError):
    """The machine cannot run what was asked (missing kernel feature, no root, port in use)."""


class PeerError(FlushbenchError):
    """The peer died, stalled, reset the connection or answered nonsense."""


class ProtocolError(PeerError):
    """A frame on a control or data connection broke the protocol."""


class ResultsError(FlushbenchError):
    """A results file is missing, corrupt, truncated or from a newer schema."""
