"""Certificates of the conversion webhook: a self-signed CA and a serving certificate.

Pure functions of their inputs (including `now`), so issuing, validating and deciding when to
rotate are unit-testable. The operator stores the result in a Secret (`ca.crt`, `ca.key`,
`tls.crt`, `tls.key`) and publishes `ca.crt` as the CRD's `caBundle`.

Rotation keeps the CA while it has life left, so `caBundle` does not change when only the
serving certificate is renewed. When the CA itself is renewed, `ca.crt` holds the new CA
followed by the old one until the old one expires, so an API server that still has the
previous `caBundle` keeps trusting the webhook while the new bundle propagates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=5 * 365)
SERVING_VALIDITY = dt.timedelta(days=90)
RENEW_FRACTION = 1 / 3  # renew once less than a third of the lifetime is left
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clock skew between nodes

SECRET_KEYS = ("ca.crt", "tls.crt", "tls.key")  # a user-provided Secret needs these
CA_KEY = "ca.key"  # only in an operator-managed Secret


@dataclass(frozen=True)
class Bundle:
    """PEM text of everything the webhook needs. `ca_pem` may hold more than one CA."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    ca_key_pem: str = ""

    def secret_data(self) -> dict[str, str]:
        data = {"ca.crt": self.ca_pem, "tls.crt": self.cert_pem, "tls.key": self.key_pem}
        if self.ca_key_pem:
            data[CA_KEY] = self.ca_key_pem
        return data

    @classmethod
    def from_secret_data(cls, data: dict[str, str]) -> Bundle:
        missing = [key for key in SECRET_KEYS if not data.get(key)]
        if missing:
            raise CertificateError(f"Secret lacks {', '.join(missing)}")
        return cls(data["ca.crt"], data["tls.crt"], data["tls.key"], data.get(CA_KEY, ""))


class CertificateError(ValueError):
    pass


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "thumbnail-operator"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _sans(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def new_ca(now: dt.datetime, validity: dt.timedelta = CA_VALIDITY) -> tuple[str, str]:
    """A fresh CA: (certificate PEM, key PEM)."""
    key = _key()
    name = _name(f"thumbnail-operator-webhook-ca-{int(now.timestamp())}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def new_serving(
    ca_cert_pem: str, ca_key_pem: str, hosts: Sequence[str], now: dt.datetime,
    validity: dt.timedelta = SERVING_VALIDITY,
) -> tuple[str, str]:
    """A serving certificate for `hosts` (DNS names or IPs) signed by the CA."""
    ca_cert = _certificates(ca_cert_pem)[0]  # the first CA is the current one
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA key must be an EC key")
    key = _key()
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_sans(hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def issue(hosts: Sequence[str], now: dt.datetime, *, ca_validity: dt.timedelta = CA_VALIDITY,
          serving_validity: dt.timedelta = SERVING_VALIDITY) -> Bundle:
    """A new CA and a serving certificate signed by it."""
    ca_pem, ca_key_pem = new_ca(now, ca_validity)
    cert_pem, key_pem = new_serving(ca_pem, ca_key_pem, hosts, now, serving_validity)
    return Bundle(ca_pem, cert_pem, key_pem, ca_key_pem)


def _certificates(pem: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError as err:
        raise CertificateError(f"unreadable certificate: {err}") from None


def _due(cert: x509.Certificate, now: dt.datetime) -> bool:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < lifetime * RENEW_FRACTION


def _public(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    return bytes(public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo))


def rotation_reason(bundle: Bundle, hosts: Sequence[str], now: dt.datetime) -> str | None:
    """Why `bundle` must be renewed now, or None while it is good."""
    try:
        cas = _certificates(bundle.ca_pem)
        serving = _certificates(bundle.cert_pem)[0]
        key = serialization.load_pem_private_key(bundle.key_pem.encode(), password=None)
    except (CertificateError, ValueError, IndexError) as err:
        return f"unreadable: {err}"
    if not cas:
        return "no CA certificate"
    if _due(cas[0], now):
        return f"CA expires {cas[0].not_valid_after_utc.isoformat()}"
    if _due(serving, now):
        return f"serving certificate expires {serving.not_valid_after_utc.isoformat()}"
    if _public(serving.public_key()) != _public(key.public_key()):
        return "serving key does not match its certificate"
    try:
        serving.verify_directly_issued_by(cas[0])
    except (ValueError, TypeError, InvalidSignature):
        return "serving certificate not issued by the current CA"
    try:
        sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "serving certificate has no subject alternative names"
    wanted = set(_sans(hosts))
    if not wanted <= set(sans):
        return "serving certificate does not cover " + ", ".join(sorted(map(str, hosts)))
    return None


def renew(bundle: Bundle, hosts: Sequence[str], now: dt.datetime, *,
          ca_validity: dt.timedelta = CA_VALIDITY,
          serving_validity: dt.timedelta = SERVING_VALIDITY) -> Bundle:
    """The next bundle: same CA (new serving cert) while the CA is good, else a new CA that is
    published next to the old one until the old one expires."""
    try:
        cas = _certificates(bundle.ca_pem)
    except CertificateError:
        cas = []
    if cas and bundle.ca_key_pem and not _due(cas[0], now):
        cert_pem, key_pem = new_serving(bundle.ca_pem, bundle.ca_key_pem, hosts, now,
                                        serving_validity)
        return Bundle(bundle.ca_pem, cert_pem, key_pem, bundle.ca_key_pem)
    fresh = issue(hosts, now, ca_validity=ca_validity, serving_validity=serving_validity)
    still_valid = [_pem_cert(ca) for ca in cas[:1] if ca.not_valid_after_utc > now]
    return Bundle("".join([fresh.ca_pem, *still_valid]), fresh.cert_pem, fresh.key_pem,
                  fresh.ca_key_pem)


def covered_hosts(cert_pem: str) -> list[str]:
    """DNS names and IPs a serving certificate is valid for (empty if unreadable)."""
    try:
        cert = _certificates(cert_pem)[0]
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (CertificateError, IndexError, x509.ExtensionNotFound):
        return []
    return [*sans.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))]


def merged_hosts(wanted: Sequence[str], bundle: Bundle) -> list[str]:
    """`wanted` first, then names the current certificate already covers: replicas (or
    versions) configured with different names converge on one certificate for all of them
    instead of renewing it back and forth."""
    return list(dict.fromkeys([*wanted, *covered_hosts(bundle.cert_pem)]))


def not_after(pem: str) -> dt.datetime:
    return _certificates(pem)[0].not_valid_after_utc
