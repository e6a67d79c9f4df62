"""PEM certificates and keys: thumbprints, repairing pasted PEM text, checking a key belongs to its certificate."""

from __future__ import annotations

import re

__all__ = ["certificate_thumbprints", "key_pair_problem", "rewrap_pem"]


def certificate_thumbprints(certificate_pem: str) -> tuple[str, str]:
    """``(sha1, sha256)`` thumbprints of a PEM certificate, upper-case hex (SHA-1 is what Entra ID displays)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    return cert.fingerprint(hashes.SHA1()).hex().upper(), cert.fingerprint(hashes.SHA256()).hex().upper()


def key_pair_problem(cert: str, key: str, passphrase: str | None) -> str | None:
    """What is wrong with a certificate and its private key (None when they are a valid, matching pair)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificate(cert.encode())
    except ValueError:
        return "the certificate is not a valid PEM X.509 certificate ('-----BEGIN CERTIFICATE-----')"
    try:
        private_key = serialization.load_pem_private_key(
            key.encode(), password=passphrase.encode() if passphrase else None
        )
    except TypeError:
        if passphrase:
            return "extra 'private_key_passphrase' is set but the private key is not encrypted; remove it"
        return "the private key is encrypted: set extra 'private_key_passphrase' to its passphrase"
    except ValueError:
        if passphrase:
            return (
                "cannot decrypt the private key: extra 'private_key_passphrase' is wrong (or the key is "
                "not a PEM private key)"
            )
        return "the private key is not a valid PEM private key"
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if certificate.public_key().public_bytes(encoding, public) != private_key.public_key().public_bytes(
        encoding, public
    ):
        return "the private key does not belong to the certificate; configure the matching pair"
    return None


_PEM_BLOCK = re.compile(r"(-----BEGIN [A-Z0-9 ]+-----)(.*?)(-----END [A-Z0-9 ]+-----)", re.DOTALL)


def rewrap_pem(text: str) -> str:
    """Undo what UIs and env vars do to PEM text: literal ``\\n`` and newlines lost in a one-line input box."""
    text = text.replace("\\n", "\n").strip()

    def block(match: re.Match[str]) -> str:
        begin, body, end = match.groups()
        if "Proc-Type:" in body:  # legacy encrypted PEM headers: leave as given
            return match.group(0)
        data = "".join(body.split())
        lines = [data[i : i + 64] for i in range(0, len(data), 64)]
        return "\n".join([begin, *lines, end])

    return _PEM_BLOCK.sub(block, text) + "\n"
