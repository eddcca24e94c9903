"""One TLS context for a process's HTTP clients, its CA bundle loaded at the first handshake, and
https still verified (modyard.common.tls)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from modyard.common.bus.management import BrokerManagement
from modyard.common.service_client import ServiceClient
from modyard.common.settings import CommonSettings
from modyard.common.tls import client_tls_context, new_client_tls_context


def _pool_context(client: httpx.AsyncClient) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined,no-any-return]


def _ca_and_server_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA of its own and a certificate it signed for 127.0.0.1 (ca.pem, server.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modyard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass  # the client refused the certificate and hung up
    finally:
        writer.close()


async def _serve(tls: ssl.SSLContext | None) -> AsyncIterator[int]:
    server = await asyncio.start_server(_answer_ok, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _ca_and_server_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def https_port(certificates: tuple[Path, Path, Path]) -> AsyncIterator[int]:
    _, server_pem, key_pem = certificates
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(server_pem, key_pem)
    async for port in _serve(tls):
        yield port


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    async for port in _serve(None):
        yield port


async def test_the_services_clients_share_one_context() -> None:
    settings = CommonSettings()
    registry = ServiceClient(settings, base_url="http://127.0.0.1:1", subject="a", timeout=1)
    installer = ServiceClient(settings, base_url="http://127.0.0.1:2", subject="b", timeout=1)
    management = BrokerManagement(settings)
    try:
        contexts = {
            id(_pool_context(registry._http)),
            id(_pool_context(installer._http)),
            id(_pool_context(management._http)),
        }
        assert contexts == {id(client_tls_context())}
        assert client_tls_context() is client_tls_context()
        # A context that verifies, whatever the URL.
        assert client_tls_context().verify_mode == ssl.CERT_REQUIRED
        assert client_tls_context().check_hostname
    finally:
        await registry.close()
        await installer.close()
        await management.close()


async def test_plain_http_never_loads_the_ca_bundle(http_port: int) -> None:
    context = new_client_tls_context()
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.get(f"http://127.0.0.1:{http_port}/")
    assert response.text == "ok"
    assert not context.trust_loaded
    assert context.cert_store_stats()["x509_ca"] == 0


async def test_an_unknown_certificate_is_refused(https_port: int) -> None:
    # Trusted: certifi's bundle (no SSL_CERT_FILE / SSL_CERT_DIR), which never signed this one.
    context = new_client_tls_context()
    async with httpx.AsyncClient(verify=context) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://127.0.0.1:{https_port}/")
    # The bundle went in before the handshake, once.
    assert context.trust_loaded
    assert context.cert_store_stats()["x509_ca"] > 100


async def test_ssl_cert_file_is_trusted_and_the_host_name_still_checked(
    https_port: int, certificates: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_pem, _, _ = certificates
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    context = new_client_tls_context()
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.get(f"https://127.0.0.1:{https_port}/")
        assert response.text == "ok"
        # Signed by the trusted CA, but for 127.0.0.1, not this name.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://localhost:{https_port}/")
    assert context.cert_store_stats()["x509_ca"] == 1


async def test_ssl_cert_dir_is_trusted(
    https_port: int,
    certificates: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca_pem, _, _ = certificates
    # A CA directory names each certificate by its subject's hash (c_rehash); copy it under that
    # name as OpenSSL looks it up.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    (tmp_path / f"{_subject_hash(ca_pem)}.0").write_bytes(ca_pem.read_bytes())
    context = new_client_tls_context()
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.get(f"https://127.0.0.1:{https_port}/")
    assert response.text == "ok"


def _subject_hash(pem: Path) -> str:
    """OpenSSL's subject name hash (``openssl x509 -hash``), the name a CA directory uses."""
    return subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
