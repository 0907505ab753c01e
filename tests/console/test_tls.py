"""`atm_console serve` over HTTPS with client certificates, as docs/deployment.md sets it up.

A throwaway CA signs the console's server certificate and one operator's client certificate; the real
console process runs on a real mosquitto. Without a client certificate the TLS handshake is refused;
with the operator's it serves the sign-in page; a certificate from another CA is refused too.
"""

import contextlib
import datetime
import http.client
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from atm_tools.mosquitto import Mosquitto, free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _wait_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca(tmp: Path, cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    _write(tmp / cn, key, cert)
    return key, cert


def _leaf(tmp: Path, cn: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], server: bool) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    b = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca[1].subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )  # fmt: skip
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    _write(tmp / cn, key, b.sign(ca[0], hashes.SHA256()))


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca = _ca(tmp, "atm-ca")
    _leaf(tmp, "console", ca, server=True)
    _leaf(tmp, "alice", ca, server=False)
    _leaf(tmp, "mallory", _ca(tmp, "other-ca"), server=False)
    broker = Mosquitto(tmp / "broker")
    broker.start()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "atm_console", "serve", "--broker-port", str(broker.port),
         "--http-port", str(port), "--db", str(tmp / "c.db"), "--tls-cert", str(tmp / "console.pem"),
         "--tls-key", str(tmp / "console.key"), "--client-ca", str(tmp / "atm-ca.pem"),
         "--require-client-cert"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert (
            banner.startswith(f"console on https://127.0.0.1:{port}")
            and "client certificates required" in banner
        )
        _wait_port(port)
        yield port, tmp
    finally:
        proc.terminate()
        proc.wait(10)
        broker.stop()


def _get(port: int, tmp: Path, client: str | None) -> int:
    ctx = ssl.create_default_context(cafile=str(tmp / "atm-ca.pem"))
    ctx.check_hostname = False  # the server certificate names localhost; we dial 127.0.0.1
    if client:
        ctx.load_cert_chain(str(tmp / f"{client}.pem"), str(tmp / f"{client}.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/login")
        return conn.getresponse().status
    finally:
        conn.close()


def test_an_operator_certificate_from_the_ca_is_served(console: tuple[int, Path]) -> None:
    assert _get(*console, "alice") == 200


@pytest.mark.parametrize("client", [None, "mallory"], ids=["no-certificate", "other-ca"])
def test_without_a_certificate_from_the_ca_the_handshake_fails(
    console: tuple[int, Path], client: str | None
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _get(*console, client)


def test_tls_options_are_checked_before_serving(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    for args, want in (
        (["--tls-cert", str(tmp_path / "bad.pem")], "go together"),
        (["--tls-cert", str(tmp_path / "bad.pem"), "--tls-key", str(tmp_path / "bad.pem")], "TLS files"),
        (["--require-client-cert"], "needs --client-ca"),
    ):
        cmd = [sys.executable, "-m", "atm_console", "serve", "--db", str(tmp_path / "c.db"), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and want in lines[0], res.stderr
