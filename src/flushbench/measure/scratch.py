"""The reused buffer of a send path that copies a message's parts before one send.

How long a large copy takes can depend on where its destination lies against its source.
On the AMD EPYC VM this was built on (glibc 2.36, a CPU with FSRM), ``memcpy`` of 16-128
KiB ran 7-15 times slower (4 KiB: 2-5 times) when the destination lay 1-31 bytes past the
source's offset in a 4 KiB page (``bench/bench_copy_alignment.py``). Where malloc puts a
buffer depends on the process's allocation history, so a scratch buffer placed by malloc
alone would make such a strategy's figure a draw of the allocator: the same from one value
to the next, different from one process, or one version of the harness, to another. So
this buffer is allocated once (again only to grow) and placed so that the message's
largest part lands at its source's offset in the page: every process measures the same,
unhindered copy. ``CoalesceStrategy`` copies a message whose last part (the body) is under
2 KiB into a plain ``bytearray`` instead: 1 KiB copies were as fast at every offset, and
the placed fill costs 0.12 us more than the plain one for a 64 B message (0.36 against
0.24 us), about a twentieth of such a message's time.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

Buffer = bytes | bytearray | memoryview
PAGE = 4096
SMALL = 2048  # a last part shorter than this: not worth placing (CoalesceStrategy)


def address(buf: Buffer) -> int | None:
    """The address of a buffer's first byte; None for a read-only buffer that is not bytes."""
    if isinstance(buf, bytes):
        return ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value  # no copy
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(buf))
    except TypeError:  # a read-only memoryview
        return None


class CopyScratch:
    """One buffer, grown when a message is larger; :meth:`fill` copies parts into it.

    ``skew`` moves the largest part's destination that many bytes past its source's page
    offset (0: at it; the benchmark sets 16 to show the slow copy).
    """

    def __init__(self, skew: int = 0) -> None:
        self.skew = skew
        self._view = self._out = memoryview(bytearray())  # the placed buffer; the last fill

    def fill(self, parts: Sequence[Buffer]) -> memoryview:
        """Copy ``parts`` one after the other into the buffer; a view of exactly those bytes."""
        view, at, end = self._view, 0, 0
        try:
            for part in parts:
                end = at + len(part)
                # one memcpy into a memoryview (a bytearray's slice assignment would copy a
                # bytes object into a temporary first, placed by malloc); past its end: an error
                view[at:end] = part
                at = end
        except ValueError:
            if end <= len(view):
                raise
            self._view = self._allocate(parts, len(view))  # a larger buffer, then again
            self._out = self._view[:0]
            return self.fill(parts)
        out = self._out
        if len(out) != at:
            out = self._out = view[:at]
        return out

    def _allocate(self, parts: Sequence[Buffer], old: int) -> memoryview:
        sizes = [len(p) for p in parts]
        size = max(sum(sizes), 2 * old)
        big = sizes.index(max(sizes))
        src = address(parts[big])
        raw = bytearray(size + PAGE)
        base = address(raw)
        assert base is not None
        # where the buffer starts: the largest part at offset sum(sizes[:big]) of it lands
        # at its source's page offset (plus skew); a source of unknown address: a page start
        want = 0 if src is None else (src - sum(sizes[:big]) + self.skew) % PAGE
        start = (want - base) % PAGE
        return memoryview(raw)[start:start + size]
