"""The agent's shared token: made by ``flushbench agent --new-token FILE``, read with checks.

A token is one line of hexadecimal digits, at least MIN_HEX of them (128 bits);
``--new-token`` writes 64 (32 random bytes from :mod:`secrets`) to a new file of mode 0600,
and refuses to overwrite one. Anything else is refused at both ends: a passphrase or a
short or repetitive string (one sniffed handshake would let anyone test guesses offline
against its HMAC), a file other users may read or write (``chmod 600 FILE``), something
other than a regular file. Errors are UsageError, one line naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from ..errors import UsageError

TOKEN_BYTES = 32  # what --new-token writes: 256 bits, as 64 hex digits
MIN_HEX = 32  # 128 bits
MAX_HEX = 256
MIN_DISTINCT = 8  # random hex uses most of its 16 digits; "deadbeef" * 4 uses 5
FILE_CAP = 4096  # a token is one line; refuse to slurp a large (or endless) file
HEX_DIGITS = "0123456789abcdef"


def _make_one(path: Path) -> str:
    return f"make one with: flushbench agent --new-token {path}"


def new_token_file(path: str | os.PathLike[str]) -> Path:
    """Write a fresh token to ``path``, created with O_EXCL and mode 0600; return the path."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists: a token file is never overwritten; remove "
                         "it first or choose another name") from None
    except OSError as exc:
        raise UsageError(f"cannot create token file {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        data = (secrets.token_hex(TOKEN_BYTES) + "\n").encode()
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise UsageError(f"cannot write token file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return path


def read_token(path: str | os.PathLike[str]) -> bytes:
    """The token in ``path`` (lower-cased hex, as bytes: the HMAC key); UsageError otherwise."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # a FIFO must not block
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"token file {path} is not a regular file; {_make_one(path)}")
        if info.st_mode & 0o077:
            raise UsageError(f"token file {path} is open to other users (mode "
                             f"{stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}")
        data = os.read(fd, FILE_CAP + 1)
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > FILE_CAP:
        raise UsageError(f"token file {path} is over {FILE_CAP} bytes, not a token; "
                         f"{_make_one(path)}")
    text = data.decode("ascii", "replace").strip().lower()
    if not text:
        raise UsageError(f"token file {path} is empty; {_make_one(path)}")
    if text.strip(HEX_DIGITS) or not MIN_HEX <= len(text) <= MAX_HEX:
        raise UsageError(f"token file {path} does not hold a token ({MIN_HEX} to {MAX_HEX} hex "
                         f"digits: a passphrase can be guessed offline); {_make_one(path)}")
    if len(set(text)) < MIN_DISTINCT:
        raise UsageError(f"token file {path} holds a repetitive token, not a random one; "
                         f"{_make_one(path)}")
    return text.encode()
