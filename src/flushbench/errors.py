"""The project's own exceptions: OS and protocol errors are mapped to these at the edges.

Every message is one line that names what was wrong and what to do; the CLI prints it
without a traceback and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'smoke'?)' for a close choice, or '' (for an unknown-name error)."""
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
