"""TLS of the OpenAI-compatible client: one shared verifying context for ``https`` servers
(built once per process, so a provider's first request does not load the CA bundle again),
and no CA loading at all for plain ``http`` servers, without ever verifying less."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from llmcore.config import ProviderConfig
from llmcore.errors import ProviderConnectionError
from llmcore.http import tls
from llmcore.openai_compat import OpenAIProvider, ssl_context
from llmcore.types import ChatRequest, Message

BODY = json.dumps(
    {
        "id": "chatcmpl-tls",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "tls-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "over tls"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }
).encode()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate: (base URL, cert file)."""
    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/v1", cert
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


@pytest.fixture(autouse=True)
def _fresh_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "_SSL_CONTEXTS", {})
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _provider(url: str) -> OpenAIProvider:
    return OpenAIProvider(
        ProviderConfig(
            name="tls", plugin="openai", base_url=url, api_key="sk-test", models=["tls-model"]
        )
    )


REQ = ChatRequest(messages=[Message("user", "hi")], model="tls-model")


def test_https_server_with_untrusted_certificate_is_refused(tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    p = _provider(url)
    try:
        with pytest.raises(ProviderConnectionError) as info:
            p.chat(REQ)
        assert (
            "CERTIFICATE_VERIFY_FAILED" in str(info.value.__cause__)
            or "certificate" in str(info.value).lower()
        )
    finally:
        p.close()


def test_https_trusts_ssl_cert_file_like_httpx(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    p = _provider(url)
    try:
        assert p.chat(REQ).content == "over tls"
    finally:
        p.close()


def test_https_providers_share_one_verifying_context() -> None:
    a = ssl_context("https://api.example.com/v1")
    b = ssl_context("HTTPS://other.example.org/v1")
    assert a is b
    assert a.verify_mode == ssl.CERT_REQUIRED and a.check_hostname
    assert a.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded


def test_plain_http_loads_no_ca_and_still_fails_closed() -> None:
    ctx = ssl_context("http://127.0.0.1:8080/v1")
    assert ctx is not ssl_context("https://api.example.com/v1")
    assert ctx.cert_store_stats()["x509_ca"] == 0
    # Were TLS ever attempted through it, nothing would verify: no CA, verification on.
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
