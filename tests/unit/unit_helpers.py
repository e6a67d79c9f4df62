"""Helpers shared by the unit tests: identity endpoint constants and PEM material made on the fly."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

LOGIN = "https://login.microsoftonline.com"
TENANT = "contoso.onmicrosoft.com"
TOKEN_URL = f"{LOGIN}/{TENANT}/oauth2/v2.0/token"


@dataclass
class Pem:
    cert: str
    key: str
    encrypted_key: str
    passphrase: str


def make_pem(passphrase: str = "open sesame") -> Pem:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-onedrive-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    plain = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), plain, encrypted, passphrase)
