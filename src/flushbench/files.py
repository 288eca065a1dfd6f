"""How flushbench writes the files of a run, a report and an export.

* Atomically (:func:`atomic_write`): a temporary name beside the target, fsync, rename, then
  fsync the folder, so a crash at any moment leaves the last complete version of each file.
* With the mode the umask allows, as ``open()`` and ``mkdir()`` give it: ``0o666 & ~umask``
  for files (``mkstemp``'s private 0600 is not kept), ``0o777 & ~umask`` for folders.
* Under sudo (effective uid 0 with ``SUDO_UID`` and ``SUDO_GID`` set), every file and folder
  made here is handed to the user who ran sudo (:func:`hand_over`), so a run made with
  ``sudo`` (``--link`` needs root) can be read, moved and deleted without it. Files made
  elsewhere (matplotlib's ``savefig``) are handed over with :func:`hand_over` too.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Literal, overload


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (setting it to
    read it, the portable way, races with threads that create files meanwhile)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file now."""
    return 0o666 & ~current_umask()


def sudo_owner() -> tuple[int, int] | None:
    """``(SUDO_UID, SUDO_GID)`` when running as root under sudo, else None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        uid, gid = int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"])
    except (KeyError, ValueError):
        return None
    return (uid, gid) if uid >= 0 and gid >= 0 else None


def hand_over(path: str | os.PathLike[str] | None = None, *, fd: int | None = None) -> None:
    """Under sudo, give ``path`` (or the open file ``fd``) to SUDO_UID:SUDO_GID; a no-op
    otherwise. Best effort: a file system that refuses chown keeps root's file."""
    owner = sudo_owner()
    if owner is None:
        return
    with contextlib.suppress(OSError):
        if fd is not None:
            os.fchown(fd, *owner)
        elif path is not None:
            os.chown(path, *owner, follow_symlinks=False)


def make_dirs(path: str | os.PathLike[str]) -> Path:
    """``path`` and its missing parents as folders (the umask's mode); under sudo the
    folders made here are handed over. Returns ``path``."""
    path = Path(path)
    made: list[Path] = []
    step = path
    while not os.path.lexists(step) and step != step.parent:
        made.append(step)
        step = step.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(made):
        hand_over(folder)
    return path


@overload
def atomic_write(path: Path, mode: Literal["w"] = "w") -> AbstractContextManager[IO[str]]: ...
@overload
def atomic_write(path: Path, mode: Literal["wb"]) -> AbstractContextManager[IO[bytes]]: ...


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, fsync, then rename over it. The file gets
    the umask's mode and, under sudo, the sudo user as its owner."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            os.fchmod(fh.fileno(), file_mode())  # mkstemp made it 0600
            hand_over(fd=fh.fileno())
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


@contextlib.contextmanager
def open_output(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """A text file the user named (``-o FILE``), written in place: it may be a FIFO or
    ``/dev/stdout``. A new file gets the umask's mode (``open()``'s own) and, under sudo,
    the sudo user as its owner; an existing one keeps its owner and mode."""
    new = not os.path.lexists(path)
    with open(path, "w", encoding="utf-8") as fh:
        if new:
            hand_over(fd=fh.fileno())
        yield fh
