"""Enter a network namespace: the first thing a worker on an emulated host does.

Network namespaces are per *thread*: this moves the calling thread. The rest of the
namespace tooling (creating labs, running ip and tc) is in :mod:`flushbench.netlab`.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from ..errors import SetupError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
ROOT_MSG = ("the emulated transport needs root (network namespaces, TUN): "
            "run as root or use --peer")


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace *name* (/run/netns/NAME).

    Call it first thing in a fresh process (before sockets or threads exist): later sockets
    and threads are created in the namespace. Network namespaces are per thread.
    """
    try:
        fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SetupError(f"no network namespace {name!r}: is the lab up? "
                         "(flushbench netlab status)") from None
    except PermissionError:
        raise SetupError(ROOT_MSG) from None
    try:
        if hasattr(os, "setns"):  # Python 3.12+
            os.setns(fd, CLONE_NEWNET)
        elif ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise SetupError(f"setns({name}) failed: {os.strerror(err)}"
                             + ("; " + ROOT_MSG if err == 1 else ""))
    except PermissionError:
        raise SetupError(ROOT_MSG) from None
    finally:
        os.close(fd)
