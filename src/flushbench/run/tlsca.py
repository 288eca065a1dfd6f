"""The run's throwaway certificate authority, for TLS cases (``tls = true``).

Made with trustme when a run with TLS cases starts, in a private temporary directory (mode
0700, files 0600) that is removed when the run ends, however it ends. The peer gets the path
of its certificate and key (one PEM file) in its environment, the workers the path of the
CA certificate in their visit's plan. Nothing of it is written into the run directory: the
CA certificate's SHA-256 fingerprint goes into meta.json, which says which CA a run trusted
without keeping any key.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from ..case import Case
from ..errors import SetupError

# Names the peer's certificate always carries, beside the address it listens on.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def check_versions(cases: Iterable[Case]) -> None:
    """SetupError (one line) if a TLS case asks for a version this Python's OpenSSL lacks."""
    for version in sorted({c.tls_version for c in cases if c.tls}):
        if not getattr(ssl, "HAS_TLSv" + version.replace(".", "_"), False):
            raise SetupError(f"tls_version {version} is not available in this Python's "
                             f"OpenSSL ({ssl.OPENSSL_VERSION}): choose the other version or "
                             "drop those cases")


class RunCA:
    """A throwaway CA and the files the peer and the workers need; ``close()`` removes them."""

    def __init__(self) -> None:
        try:
            import trustme
        except ImportError:
            raise SetupError("TLS cases need the trustme package (pip install trustme)") \
                from None
        self.dir = Path(tempfile.mkdtemp(prefix="flushbench-tls-"))  # 0700
        try:
            self._ca = trustme.CA(organization_name="flushbench run (throwaway)")
            self.ca_path = str(self.dir / "ca.pem")
            self._write(self.ca_path, self._ca.cert_pem.bytes())
            der = ssl.PEM_cert_to_DER_cert(self._ca.cert_pem.bytes().decode("ascii"))
            self.fingerprint = hashlib.sha256(der).hexdigest()
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception) and not isinstance(exc, SetupError):
                raise SetupError(f"cannot make the run's TLS certificate authority: "
                                 f"{type(exc).__name__}: {exc}") from None
            raise

    def server_cert(self, host: str) -> str:
        """Issue the peer's certificate for ``host`` (and LOCAL_NAMES); the PEM file's path."""
        names = [host, *(n for n in LOCAL_NAMES if n != host)]
        try:
            cert = self._ca.issue_cert(*names)
            path = str(self.dir / "peer.pem")
            self._write(path, cert.private_key_and_cert_chain_pem.bytes())
        except Exception as exc:  # noqa: BLE001 - trustme/cryptography: one line for the user
            raise SetupError(f"cannot make the peer's TLS certificate for {host!r}: "
                             f"{type(exc).__name__}: {exc}") from None
        return path

    @staticmethod
    def _write(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RunCA:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
