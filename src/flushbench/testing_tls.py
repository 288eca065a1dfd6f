"""The conformance kit over TLS: :mod:`flushbench.testing`'s checks through TLS connections.

    from flushbench.testing_tls import check_strategy_tls
    check_strategy_tls(MyStrategy)  # None, or AssertionError saying what is wrong

A strategy claims TLS unless its ``tls_unavailable`` names a reason (``sendmsg``: an
ssl.SSLSocket refuses ``sendmsg()``); for such a strategy the checks raise
:class:`TlsUnavailable` with that reason instead of running. Blocking strategies get an
ssl.SSLSocket; asyncio strategies get the plain socket and asyncio's own TLS over it, as a
TLS case's session gives them. The certificates come from a throwaway trustme CA in a
private temporary directory, removed when the check ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import testing
from .case import Case
from .measure import strategies
from .measure.aiosession import _open_tls, flush_transport
from .measure.peer import _serve_connection
from .measure.session import Session
from .measure.strategies import AsyncStrategy, Strategy
from .testing import DEFAULT_TIMEOUT, FILE_SIZE, StrategyClass, _FileSend, _Reader, _Unit

__all__ = ["TlsUnavailable", "check_session_tls", "check_strategy_tls", "deliver_tls",
           "throwaway_ca"]


class TlsUnavailable(testing.StrategyUnavailable):
    """The strategy cannot send through TLS (its ``tls_unavailable`` gave this reason)."""


class Tls(NamedTuple):
    """A throwaway CA's files and contexts for 127.0.0.1 (TLS 1.3 unless asked otherwise)."""

    ca_path: str
    client: ssl.SSLContext
    server: ssl.SSLContext


@contextlib.contextmanager
def throwaway_ca(version: str = "1.3") -> Iterator[Tls]:
    """A trustme CA and a server certificate for 127.0.0.1, in a private temporary directory
    removed at the end; the client context speaks exactly ``version``."""
    import trustme

    from .measure import tls

    with tempfile.TemporaryDirectory(prefix="flushbench-tls-") as folder:
        ca = trustme.CA()
        ca_path, peer_path = str(Path(folder) / "ca.pem"), str(Path(folder) / "peer.pem")
        ca.cert_pem.write_to_path(ca_path)
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(peer_path)
        yield Tls(ca_path, tls.client_context(ca_path, version), tls.server_context(peer_path))


def _require_tls(cls: StrategyClass) -> None:
    testing._require(cls)
    if cls.tls_unavailable:
        raise TlsUnavailable(f"strategy {cls.name!r} is unavailable over TLS: "
                             f"{cls.tls_unavailable}")


def _pair(tls: Tls, raw_client: bool) -> tuple[socket.socket, ssl.SSLSocket]:
    """(client, server) over loopback TCP. The client is an ssl.SSLSocket after the
    handshake, or (``raw_client``) the plain socket, for asyncio's own TLS over it; the
    server then shakes hands on its first read."""
    a, b = testing.socket_pair("tcp")
    server = tls.server.wrap_socket(b, server_side=True, do_handshake_on_connect=False)
    if raw_client:
        return a, server
    done: list[BaseException | None] = []

    def accept() -> None:
        try:
            server.settimeout(DEFAULT_TIMEOUT)
            server.do_handshake()
            done.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            done.append(exc)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        client = tls.client.wrap_socket(a, server_hostname="127.0.0.1")
    except BaseException:
        server.close()
        a.close()
        raise
    finally:
        thread.join(DEFAULT_TIMEOUT)
    if done != [None]:
        client.close()
        server.close()
        raise AssertionError(f"TLS handshake on the server side failed: {done}")
    server.settimeout(None)
    return client, server


def deliver_tls(cls: StrategyClass, tls: Tls, *, tiny: bool = False, file: bool = False,
                timeout: float = DEFAULT_TIMEOUT) -> int:
    """:func:`flushbench.testing.deliver` through TLS: send, check the bytes that arrive,
    return the strategy's calls. AssertionError on failure."""
    what = "send_file" if file else "messages"
    label = (f"{cls.__name__} ({cls.name!r}): {what} over TLS, "
             + ("SO_SNDBUF=1 and a slow reader" if tiny else "default buffers"))
    with tempfile.TemporaryFile() as fh:
        data = testing._pattern(FILE_SIZE, 1)
        fh.write(data)
        fh.flush()
        units: Sequence[_Unit] = [_FileSend(fh, data)] * 2 if file else testing.messages(3)
        return _exercise(cls, tls, label, tiny, timeout, units)


def _exercise(cls: StrategyClass, tls: Tls, label: str, tiny: bool, timeout: float,
              units: Sequence[_Unit]) -> int:
    deadline = time.monotonic() + timeout
    expect = b"".join(u.data if isinstance(u, _FileSend) else b"".join(u) for u in units)
    is_async = issubclass(cls, AsyncStrategy)
    a, b = _pair(tls, raw_client=is_async)
    reader = _Reader(b, a, tiny, deadline, expect)
    loop = asyncio.new_event_loop() if is_async else None
    strat: Strategy | AsyncStrategy | None = None
    try:
        if tiny:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        reader.start()
        strat = cls(a)
        try:
            if isinstance(strat, AsyncStrategy) and loop is not None:
                testing._run(loop, _send_async(strat, tls, units, reader), deadline)
            else:
                with testing.interrupting_timer() if tiny else contextlib.nullcontext(False):
                    for unit in units:
                        testing._send(strat, unit)
            reader.wait()
        except Exception as exc:
            if reader.timed_out or time.monotonic() >= deadline:
                raise AssertionError(f"{label}: did not finish within {timeout:g} s "
                                     f"({reader.got} of {len(expect)} bytes arrived)") from exc
            raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
        reader.judge(label, "by the time the last send returned", units,
                     "; a send must not return while bytes wait in user space")
        if strat.calls < len(units):
            raise AssertionError(f"{label}: calls is {strat.calls} after {len(units)} sends; "
                                 "count every call into the socket API in self.calls")
        return strat.calls
    finally:
        reader.halt.set()
        testing._shut(a, b)
        reader.join(5.0)
        if strat is not None:
            with contextlib.suppress(Exception):
                strat.close()
        if loop is not None:
            if isinstance(strat, AsyncStrategy) and strat.writer is not None:
                strat.writer.transport.abort()
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.sleep(0))
            loop.close()
        a.close()
        b.close()


async def _send_async(strat: AsyncStrategy, tls: Tls, units: Sequence[_Unit],
                      reader: _Reader) -> None:
    await _open_tls(strat, tls.client, "127.0.0.1")
    for unit in units:
        await testing._send(strat, unit)
    await flush_transport(strat.streams[1])
    # asyncio's TLS transport hands its records to the socket's own transport, whose buffer
    # its write-buffer size leaves out: the loop must run until that one is empty too (a
    # TLS case's value runs it until the peer's DONE). Bounded by the check's deadline.
    while reader.got < len(reader.expect) and reader.is_alive():
        await asyncio.sleep(0.005)


def check_strategy_tls(cls: StrategyClass, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """:func:`flushbench.testing.check_strategy` through TLS 1.3: messages and (for a
    file strategy) ``send_file``, with default buffers, then SO_SNDBUF=1, a slow reader and
    (blocking strategies, main thread) a 1 ms SIGALRM timer. TlsUnavailable, with the
    strategy's reason, for a strategy that does not claim TLS."""
    _require_tls(cls)
    with throwaway_ca() as tls:
        for tiny, file in itertools.product((False, True), (False, True)):
            if ("file" in cls.workloads) if file else bool(cls.workloads - {"file"}):
                deliver_tls(cls, tls, tiny=tiny, file=file, timeout=timeout)


def check_session_tls(cls: StrategyClass, *, version: str = "1.3",
                      timeout: float = DEFAULT_TIMEOUT) -> list[tuple[Session, dict[str, Any]]]:
    """A TLS Session with ``cls`` against the peer's connection handler in a thread (TLS on
    both ends, the peer's byte count checked after every value): a stream, an rr and a file
    case, as far as ``cls.workloads`` has them. Returns each closed session and what its
    :meth:`~flushbench.measure.session.Session.effective` gave (version, cipher, handshake)."""
    _require_tls(cls)
    previous = strategies.REGISTRY.get(cls.name)
    strategies.register_strategy(cls)
    out = []
    try:
        with throwaway_ca(version) as tls:
            for workload, size in (("stream", 1000), ("rr", 100), ("file", 100_000)):
                if workload in cls.workloads:
                    case = Case(workload, cls.name, msg_size=size, ops=50, tls=True,
                                tls_version=version)
                    out.append(_one_session(case, tls, timeout))
    finally:
        if previous is None:
            del strategies.REGISTRY[cls.name]
        else:
            strategies.REGISTRY[cls.name] = previous
    return out


def _one_session(case: Case, tls: Tls, timeout: float) -> tuple[Session, dict[str, Any]]:
    label = f"{case.strategy!r}: a TLS Session for {case.id}"
    a, b = testing.socket_pair("tcp")
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            _serve_connection(b, tls=tls.server)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    peer = threading.Thread(target=serve, name="flushbench.testing_tls peer", daemon=True)
    try:
        peer.start()
        try:
            session = Session(case, a, io_timeout=timeout, ca=tls.ca_path)
            try:
                for _ in range(2):
                    session.run_value(session.ops_for(case.op_count, 0.2))
                effective = session.effective()
            finally:
                session.close()
        except Exception as exc:
            raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
        peer.join(timeout)
        if peer.is_alive() or errors:
            raise AssertionError(f"{label}: the peer did not end cleanly: {errors or 'hangs'}")
        return session, effective
    finally:
        if peer.is_alive():
            testing._shut(a, b)
            peer.join(5.0)
        a.close()
        b.close()
