"""TLS for the data connection: the contexts, the handshake, and the bytes a record adds.

Imported only where a TLS case runs (a worker with a TLS case, a peer given a certificate):
``ssl`` costs a few milliseconds to import. The certificates come from the run's throwaway CA
(``run/tlsca.py``): the worker gets the CA certificate's path, the peer the path of its own
certificate and key. A TLS connection starts as a plain one: the hello (with the ticket) and
its answer go in the clear, then both ends shake hands (STARTTLS-like), so the peer spends no
TLS work on a stranger and an asyncio strategy can run the handshake in its own event loop.

Record overhead (what one TLS record adds to the bytes on the wire), from the negotiated
version and cipher:

- TLS 1.3, every AEAD suite with a 16-byte tag (AES-GCM, ChaCha20-Poly1305, AES-CCM):
  5 (header) + 1 (inner content type) + 16 (tag) = 22 bytes. No record padding: OpenSSL adds
  none unless asked, and Python never asks.
- TLS 1.2, AES-GCM or AES-CCM: 5 + 8 (explicit nonce) + 16 = 29 bytes; ChaCha20-Poly1305:
  5 + 16 = 21 bytes. Anything else (CBC suites, CCM_8): unknown (None).
"""

from __future__ import annotations

import socket
import ssl
import time

from ..errors import PeerError, SetupError

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
HANDSHAKE_TIMEOUT = 5.0  # seconds, on either side (the peer's also bounds a stalled client)
_clients: dict[tuple[str, str], ssl.SSLContext] = {}


def has_version(version: str) -> bool:
    """The local OpenSSL speaks this TLS version ("1.2" or "1.3")."""
    return bool(getattr(ssl, "HAS_TLSv" + version.replace(".", "_"), False))


def client_context(cafile: str, version: str) -> ssl.SSLContext:
    """A context that trusts only the run's CA and speaks exactly ``version`` (cached)."""
    key = (cafile, version)
    if key not in _clients:
        if not has_version(version):
            raise SetupError(f"TLS {version} is not available in this Python's OpenSSL "
                             f"({ssl.OPENSSL_VERSION}): use tls_version = \"1.2\" or \"1.3\" "
                             "as it allows")
        try:
            ctx = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise SetupError(f"cannot load the run's CA certificate {cafile}: {exc}") from None
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
        _clients[key] = ctx
    return _clients[key]


def server_context(certfile: str) -> ssl.SSLContext:
    """The peer's context: its certificate and key (one PEM file), TLS 1.2 or 1.3."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"the peer cannot load its TLS certificate {certfile}: {exc}") \
            from None
    return ctx


def wrap_client(sock: socket.socket, ctx: ssl.SSLContext, host: str,
                ) -> tuple[ssl.SSLSocket, int]:
    """Shake hands over the connected ``sock`` (which the returned socket replaces); return
    it and the handshake's duration in ns. The socket is left blocking, as it came."""
    tls = ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    start = time.perf_counter_ns()
    try:
        tls.settimeout(HANDSHAKE_TIMEOUT)
        tls.do_handshake()
        tls.settimeout(None)
    except (OSError, ssl.SSLError) as exc:
        tls.close()
        raise PeerError(f"TLS handshake with the peer failed: {exc}") from None
    return tls, time.perf_counter_ns() - start


def wrap_server(conn: socket.socket, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """The peer's side of the handshake, bounded by HANDSHAKE_TIMEOUT; blocking after it."""
    tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        tls.settimeout(HANDSHAKE_TIMEOUT)
        tls.do_handshake()
        tls.settimeout(None)
    except BaseException:
        tls.close()
        raise
    return tls


def record_overhead(version: str | None, cipher: str | None) -> int | None:
    """Bytes one record adds on the wire, for the negotiated version and cipher (see above)."""
    name = (cipher or "").upper()
    if version == "TLSv1.3":
        return None if "CCM_8" in name else 22
    if version == "TLSv1.2":
        if "CHACHA20" in name:
            return 21
        if ("GCM" in name or "CCM" in name) and "CCM8" not in name:
            return 29
    return None


def describe(sock: ssl.SSLSocket | None, ssl_object: ssl.SSLObject | None = None,
             ) -> dict[str, object]:
    """The negotiated version and cipher ("TLSv1.3 TLS_AES_256_GCM_SHA384"), and the bytes a
    record adds with them (None where unknown)."""
    conn = sock if sock is not None else ssl_object
    version = conn.version() if conn is not None else None
    cipher = conn.cipher() if conn is not None else None
    name = cipher[0] if cipher else None
    return {"tls_cipher": f"{version} {name}",
            "tls_record_bytes": record_overhead(version, name)}
