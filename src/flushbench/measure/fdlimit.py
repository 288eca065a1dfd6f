"""File descriptors for many connections: raise the soft limit as far as the hard one allows,
or say in one line what the limit is and how to raise it."""

from __future__ import annotations

from ..errors import SetupError

SPARE_FDS = 64  # besides the connections: the interpreter, pipes, files, the selector


def need_for(conns: int) -> int:
    """Descriptors a process holding ``conns`` connections needs."""
    return conns + SPARE_FDS


def ensure(conns: int, who: str = "this process") -> int:
    """Make room for ``conns`` connections; the soft limit now in force.

    Raises SetupError (one line) where the hard limit is too low; nothing changes then.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise, nothing to check
        return -1
    need = need_for(conns)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SetupError(
            f"{conns} connections need {need} open files, but {who} may open at most {hard} "
            f"(RLIMIT_NOFILE): raise it (ulimit -Hn {need}, or nofile in "
            "/etc/security/limits.conf) or use fewer connections")
    new = need if hard == resource.RLIM_INFINITY else max(need, min(hard, 4 * need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new
