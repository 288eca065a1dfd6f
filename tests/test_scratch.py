"""The coalesce strategy's scratch buffer: the bytes it hands on, its reuse, its placement.

Where the copy lands matters for speed on some CPUs (bench/bench_copy_alignment.py); here
only what the buffer does is checked: exact bytes, one allocation per size, the largest
part at its source's page offset.
"""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from flushbench.case import Case
from flushbench.measure.loops import make_parts
from flushbench.measure.scratch import PAGE, CopyScratch, address
from flushbench.measure.strategies import CoalesceStrategy


@given(st.lists(st.lists(st.binary(max_size=3000), min_size=1, max_size=4), min_size=1,
                max_size=5))
def test_fill_hands_on_exactly_the_parts(messages: list[list[bytes]]) -> None:
    """Messages of any shape and size, one after another (growing and shrinking): each fill
    is the parts joined, whatever the earlier ones left in the buffer."""
    scratch = CopyScratch()
    for parts in messages:
        assert bytes(scratch.fill(parts)) == b"".join(parts)


def test_fill_reuses_one_buffer_until_a_message_is_larger() -> None:
    """The same buffer for every message that fits; a larger one moves it, once."""
    parts = make_parts(Case("stream", "coalesce", 16384))
    scratch = CopyScratch()
    first = address(scratch.fill(parts))
    assert all(address(scratch.fill(parts)) == first for _ in range(50))
    assert address(scratch.fill(parts[:1])) == first  # smaller: the same buffer
    big = [b"h" * 4, b"b" * 40000]
    moved = address(scratch.fill(big))
    assert moved != first and address(scratch.fill(big)) == moved


def test_largest_part_lands_at_its_sources_page_offset() -> None:
    """The body's copy starts at the body's own offset in a page (the fast copy), or
    ``skew`` bytes past it; for a 128 KiB message, a 1 MiB one and a file chunk."""
    for size in (131072, 1 << 20):
        parts = make_parts(Case("stream", "coalesce", size))
        body = parts[1]
        for skew in (0, 16):
            got = CopyScratch(skew=skew).fill(parts)
            dst = address(got)
            src = address(body)
            assert dst is not None and src is not None
            assert (dst + len(parts[0]) - src) % PAGE == skew
    chunk = bytearray(65536)
    got = CopyScratch().fill([memoryview(chunk)[:1000]])
    assert (address(got) or 0) % PAGE == (address(chunk) or 0) % PAGE


def test_coalesce_sends_one_call_per_message_over_tcp() -> None:
    """Over a real TCP connection: one sendall per message, every byte in order, through
    the plain buffer (short messages, or a long part before a short last one) and the
    placed one."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        with client, peer:
            strategy = CoalesceStrategy(client)
            messages = [make_parts(Case("stream", "coalesce", n)) for n in (64, 16384, 100)]
            messages += [[b"h" * 5000, b"t" * 10], make_parts(Case("stream", "coalesce", 40000))]
            for parts in messages:
                strategy.send_message(parts)
            client.shutdown(socket.SHUT_WR)
            got = bytearray()
            while chunk := peer.recv(65536):
                got += chunk
    assert bytes(got) == b"".join(b"".join(p) for p in messages)
    assert strategy.calls == len(messages)
