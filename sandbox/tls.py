"""A throw-away certificate authority so the emulators can speak real HTTPS."""

from __future__ import annotations

import shutil
import ssl
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import trustme

if TYPE_CHECKING:
    import requests

SERVER_NAMES: tuple[str, ...] = ("127.0.0.1", "localhost")


class SandboxCA:
    """A trustme CA plus one server certificate for ``127.0.0.1`` and ``localhost``.

    The CA certificate is written to a PEM file in a private temp dir (removed when this object
    is garbage-collected or :meth:`cleanup` is called) so clients can trust it:
    ``requests``: :meth:`requests_session` (or ``verify=ca_bundle_path`` *and*
    ``trust_env=False``); ``httpx``: ``httpx.Client(verify=ca.client_ssl_context())``
    (``verify=<path str>`` also works but is deprecated in httpx 0.28).
    One CA may be shared by several servers.
    """

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="healthscore sandbox")
        self._server_cert = self._ca.issue_cert(*SERVER_NAMES)
        self._dir = tempfile.mkdtemp(prefix="healthscore-sandbox-ca-")
        path = Path(self._dir) / "sandbox-ca.pem"
        path.write_bytes(self._ca.cert_pem.bytes())
        self.ca_bundle_path: str = str(path)
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate in PEM form."""
        return self._ca.cert_pem.bytes()

    def server_ssl_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate for 127.0.0.1/localhost."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(ctx)
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client-side context trusting only this CA."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(ctx)
        return ctx

    def requests_session(self) -> requests.Session:
        """A ``requests.Session`` that trusts this CA.

        ``trust_env`` is switched off because requests lets ``REQUESTS_CA_BUNDLE`` /
        ``CURL_CA_BUNDLE`` from the environment override ``Session.verify``.
        """
        import requests

        session = requests.Session()
        session.verify = self.ca_bundle_path
        session.trust_env = False
        return session

    def cleanup(self) -> None:
        """Delete the PEM file now instead of at garbage collection."""
        self._finalizer()
