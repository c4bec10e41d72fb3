"""ConversionReview handler, certificates and the HTTPS webhook server (in-process, no cluster)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from tests.operator.unit.objects import full_alpha, full_v1
from thumbnail_operator.api.conversion import V1, V1ALPHA1, to_v1
from thumbnail_operator.webhook import certs
from thumbnail_operator.webhook.review import review
from thumbnail_operator.webhook.server import WebhookServer

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
HOSTS = ["thumbnail-operator-webhook.thumbnail-system.svc", "127.0.0.1"]


def conversion_review(objects: list[Any], desired: str, uid: str = "f00-ba4") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    }


# -- review ----------------------------------------------------------------------------------


def test_review_converts_every_object_in_order_and_echoes_the_uid() -> None:
    second = full_alpha()
    second["metadata"]["name"] = "second"
    answer = review(conversion_review([full_alpha(), second], V1, uid="abc-123"))
    assert answer["apiVersion"] == "apiextensions.k8s.io/v1"
    assert answer["kind"] == "ConversionReview"
    response = answer["response"]
    assert response["uid"] == "abc-123"
    assert response["result"] == {"status": "Success"}
    assert response["convertedObjects"] == [to_v1(full_alpha()), to_v1(second)]


def test_review_to_v1alpha1() -> None:
    response = review(conversion_review([full_v1()], V1ALPHA1))["response"]
    assert response["convertedObjects"] == [full_alpha()]


def test_review_of_an_empty_list_succeeds() -> None:
    response = review(conversion_review([], V1))["response"]
    assert response["result"]["status"] == "Success"
    assert response["convertedObjects"] == []


def test_a_bad_object_fails_the_review_with_its_name_and_reason() -> None:
    bad = full_alpha()
    bad["spec"]["redis"]["enabled"] = "maybe"
    response = review(conversion_review([full_alpha(), bad], V1))["response"]
    assert response["uid"] == "f00-ba4"
    assert response["convertedObjects"] == []
    assert response["result"]["status"] == "Failure"
    assert "prod/shop" in response["result"]["message"]
    assert "must be a boolean" in response["result"]["message"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (conversion_review([], "thumbnails.platform.dev/v2"), "cannot convert to"),
        ({**conversion_review([], V1), "kind": "AdmissionReview"}, "expected kind"),
        ({"kind": "ConversionReview"}, "has no request"),
        ([], "expected a ConversionReview"),
        (conversion_review([{"apiVersion": "v1", "kind": "Pod"}], V1), "cannot convert apiVersion"),
    ],
)
def test_malformed_reviews_fail_clearly(document: Any, message: str) -> None:
    result = review(document)["response"]["result"]
    assert result["status"] == "Failure"
    assert message in result["message"]


# -- certificates ----------------------------------------------------------------------------


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


def test_issued_bundle_is_valid_for_the_hosts_and_chains_to_the_ca() -> None:
    bundle = certs.issue(HOSTS, NOW)
    assert certs.rotation_reason(bundle, HOSTS, NOW) is None
    serving, ca = _cert(bundle.cert_pem), _cert(bundle.ca_pem)
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [HOSTS[0]]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_serving_certificate_is_renewed_before_expiry_with_the_same_ca() -> None:
    bundle = certs.issue(HOSTS, NOW)
    almost = NOW + certs.SERVING_VALIDITY * 0.7
    assert "serving certificate expires" in (certs.rotation_reason(bundle, HOSTS, almost) or "")
    renewed = certs.renew(bundle, HOSTS, almost)
    assert renewed.ca_pem == bundle.ca_pem  # caBundle does not change
    assert renewed.cert_pem != bundle.cert_pem
    assert certs.rotation_reason(renewed, HOSTS, almost) is None
    _cert(renewed.cert_pem).verify_directly_issued_by(_cert(bundle.ca_pem))


def test_ca_renewal_keeps_the_old_ca_trusted_until_it_expires() -> None:
    bundle = certs.issue(HOSTS, NOW)
    late = NOW + certs.CA_VALIDITY * 0.8
    assert "CA expires" in (certs.rotation_reason(bundle, HOSTS, late) or "")
    renewed = certs.renew(bundle, HOSTS, late)
    cas = x509.load_pem_x509_certificates(renewed.ca_pem.encode())
    assert len(cas) == 2
    assert cas[1] == _cert(bundle.ca_pem)  # old CA still published
    _cert(renewed.cert_pem).verify_directly_issued_by(cas[0])
    assert certs.rotation_reason(renewed, HOSTS, late) is None
    # once the old CA has expired, the next CA rotation drops it
    much_later = NOW + certs.CA_VALIDITY * 2
    again = certs.renew(renewed, HOSTS, much_later)
    assert len(x509.load_pem_x509_certificates(again.ca_pem.encode())) == 1


def test_new_hosts_or_a_mismatched_key_trigger_rotation() -> None:
    bundle = certs.issue(HOSTS, NOW)
    assert "does not cover" in (certs.rotation_reason(bundle, [*HOSTS, "other.svc"], NOW) or "")
    other = certs.issue(HOSTS, NOW)
    mixed = certs.Bundle(bundle.ca_pem, bundle.cert_pem, other.key_pem, bundle.ca_key_pem)
    assert "does not match" in (certs.rotation_reason(mixed, HOSTS, NOW) or "")
    foreign = certs.Bundle(other.ca_pem, bundle.cert_pem, bundle.key_pem)
    assert "not issued by" in (certs.rotation_reason(foreign, HOSTS, NOW) or "")
    assert "unreadable" in (certs.rotation_reason(
        certs.Bundle("junk", "junk", "junk"), HOSTS, NOW) or "")


def test_secret_data_round_trip_and_missing_keys() -> None:
    bundle = certs.issue(HOSTS, NOW)
    assert certs.Bundle.from_secret_data(bundle.secret_data()) == bundle
    with pytest.raises(certs.CertificateError, match=r"tls\.key"):
        certs.Bundle.from_secret_data({"ca.crt": "x", "tls.crt": "y"})


# -- the HTTPS server --------------------------------------------------------------------------


def _client_ssl(ca_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca_pem)
    return context


async def _post(port: int, ca_pem: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(
        f"https://127.0.0.1:{port}/convert", data=json.dumps(body),
        ssl=_client_ssl(ca_pem),
    ) as resp:
        return resp.status, await resp.json()


async def test_server_answers_reviews_over_verified_tls_and_swaps_certificates() -> None:
    first = certs.issue(["127.0.0.1"], dt.datetime.now(dt.UTC))
    server = WebhookServer("127.0.0.1", 0)
    await server.start(first)
    try:
        status, answer = await _post(server.port, first.ca_pem,
                                     conversion_review([full_alpha()], V1))
        assert status == 200
        assert answer["response"]["convertedObjects"] == [to_v1(full_alpha())]

        status, answer = await _post(server.port, first.ca_pem, "not a review")
        assert answer["response"]["result"]["status"] == "Failure"

        async with aiohttp.ClientSession() as session, session.post(
            f"https://127.0.0.1:{server.port}/convert", data=b"{not json",
            ssl=_client_ssl(first.ca_pem),
        ) as resp:
            assert resp.status == 400

        second = certs.issue(["127.0.0.1"], dt.datetime.now(dt.UTC))  # a different CA
        server.load(second)
        status, _ = await _post(server.port, second.ca_pem, conversion_review([], V1))
        assert status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _post(server.port, first.ca_pem, conversion_review([], V1))
    finally:
        await server.stop()
        server.close()


async def test_server_port_is_free_after_stop() -> None:
    bundle = certs.issue(["127.0.0.1"], dt.datetime.now(dt.UTC))
    server = WebhookServer("127.0.0.1", 0)
    await server.start(bundle)
    port = server.port
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await asyncio.wait_for(_post(port, bundle.ca_pem, conversion_review([], V1)), 5)
    server.close()


def test_renewal_for_new_hosts_keeps_the_old_ones_so_replicas_converge() -> None:
    bundle = certs.issue(["a.svc"], NOW)
    assert certs.covered_hosts(bundle.cert_pem) == ["a.svc"]
    renewed = certs.renew(bundle, certs.merged_hosts(["127.0.0.1"], bundle), NOW)
    assert set(certs.covered_hosts(renewed.cert_pem)) == {"a.svc", "127.0.0.1"}
    # neither configuration wants a renewal any more: no back and forth
    assert certs.rotation_reason(renewed, ["a.svc"], NOW) is None
    assert certs.rotation_reason(renewed, ["127.0.0.1"], NOW) is None
    assert renewed.ca_pem == bundle.ca_pem


async def test_a_stopped_server_answers_no_kept_alive_connection_either() -> None:
    bundle = certs.issue(["127.0.0.1"], dt.datetime.now(dt.UTC))
    server = WebhookServer("127.0.0.1", 0)
    await server.start(bundle)
    url = f"https://127.0.0.1:{server.port}/convert"
    body = json.dumps(conversion_review([], V1))
    async with aiohttp.ClientSession() as session:  # pools the connection, like the API server
        async with session.post(url, data=body, ssl=_client_ssl(bundle.ca_pem)) as resp:
            assert resp.status == 200
        await server.stop()
        with pytest.raises(aiohttp.ClientError):
            async with session.post(url, data=body, ssl=_client_ssl(bundle.ca_pem)) as resp:
                await resp.read()
    server.close()
