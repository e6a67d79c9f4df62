"""Certificates for the emulator: a throw-away CA, a loopback server certificate, and an app certificate.

MSAL only talks to https authorities, so the emulator serves TLS with a certificate signed by a CA it makes at
start; clients trust that CA through the published bundle path. The app certificate is what a confidential
client signs its ``client_assertion`` with.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["AppCertificate", "ServerCertificates", "make_app_certificate", "make_server_certificates"]

_LOOPBACK_NAMES = ("localhost",)
_LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class ServerCertificates:
    """Files of the emulator's CA and server certificate."""

    ca_bundle: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for the server side of the emulator's listeners."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class AppCertificate:
    """An app registration's certificate: PEM files plus the thumbprints MSAL and Entra ID use."""

    certificate_path: Path
    private_key_path: Path
    certificate_pem: str
    private_key_pem: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    public_key: rsa.RSAPublicKey

    @property
    def x5t(self) -> str:
        """The base64url SHA-1 thumbprint a JWT header carries as ``x5t``."""
        return _b64url(bytes.fromhex(self.thumbprint_sha1))

    @property
    def x5t_s256(self) -> str:
        """The base64url SHA-256 thumbprint a JWT header carries as ``x5t#S256``."""
        return _b64url(bytes.fromhex(self.thumbprint_sha256))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "airflow-provider-onedrive emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_server_certificates(directory: Path, extra_names: tuple[str, ...] = ()) -> ServerCertificates:
    """Create a CA and a server certificate for the loopback names (plus ``extra_names``) in ``directory``."""
    not_before, not_after = _validity()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Local Microsoft Graph emulator CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in (*_LOOPBACK_NAMES, *extra_names)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in _LOOPBACK_ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_bundle = directory / "emulator-ca.pem"
    cert_file = directory / "emulator-server.pem"
    key_file = directory / "emulator-server.key"
    ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_file, _pem_key(key))
    return ServerCertificates(ca_bundle=ca_bundle, cert_file=cert_file, key_file=key_file)


def make_app_certificate(directory: Path, client_id: str) -> AppCertificate:
    """Create a self-signed RSA certificate for the app registration ``client_id`` in ``directory``."""
    not_before, not_after = _validity()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(f"app {client_id}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    certificate_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    private_key_pem = _pem_key(key).decode("ascii")
    certificate_path = directory / "app-certificate.pem"
    private_key_path = directory / "app-private-key.pem"
    certificate_path.write_text(certificate_pem)
    _write_private(private_key_path, private_key_pem.encode("ascii"))
    return AppCertificate(
        certificate_path=certificate_path,
        private_key_path=private_key_path,
        certificate_pem=certificate_pem,
        private_key_pem=private_key_pem,
        thumbprint_sha1=hashlib.sha1(der).hexdigest().upper(),
        thumbprint_sha256=hashlib.sha256(der).hexdigest().upper(),
        public_key=key.public_key(),
    )
