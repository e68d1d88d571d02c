"""Web push: RFC 8291 encryption against the RFC's own example, and the adapter against a local push service
that verifies VAPID and decrypts as a browser does."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from tapwire_core.egress import EgressPolicy
from tapwire_messaging.channels.base import OutboundMessage
from tapwire_messaging.channels.http_retry import RetryPolicy
from tapwire_messaging.channels.webpush import (
    Subscription,
    VapidKey,
    WebPushAdapter,
    b64url,
    encrypt,
    from_b64url,
)
from tests.messaging.webpush_receiver import push_resolver, push_service, rfc8291_decrypt

# RFC 8291 Appendix A.
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru"
    "3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def _private(raw: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(from_b64url(raw), "big"), ec.SECP256R1())


def test_encryption_reproduces_the_rfc_8291_example() -> None:
    subscription = Subscription.parse("https://push.example.net/x", {"p256dh": UA_PUBLIC, "auth": AUTH})
    body = encrypt(PLAINTEXT, subscription, sender=_private(AS_PRIVATE), salt=from_b64url(SALT))
    assert b64url(body) == BODY
    assert (
        rfc8291_decrypt(from_b64url(BODY), ua_private=_private(UA_PRIVATE), auth=from_b64url(AUTH))
        == PLAINTEXT
    )


def test_subscriptions_are_checked_before_use() -> None:
    for endpoint, keys in (
        ("http://push.example.net/x", {"p256dh": UA_PUBLIC, "auth": AUTH}),
        ("https://push.example.net/x", {"p256dh": "AAAA", "auth": AUTH}),
        ("https://push.example.net/x", {"p256dh": UA_PUBLIC, "auth": "AAAA"}),
        ("https://user:pw@push.example.net/x", {"p256dh": UA_PUBLIC, "auth": AUTH}),
    ):
        try:
            Subscription.parse(endpoint, keys)
        except ValueError:
            continue
        raise AssertionError(f"{endpoint} {keys} was accepted")


def _message(endpoint: str, keys: dict[str, str], key: str = "0" * 32) -> OutboundMessage:
    payload = {"title": "Sale", "notificationOptions": {"body": "Half off today", "data": {"wzrk_id": "7_a"}}}
    return OutboundMessage(
        key,
        endpoint,
        "Half off today",
        title="Sale",
        platform="webpush",
        data={"keys": keys, "payload": payload},
    )


async def test_the_adapter_delivers_what_the_browser_decrypts_under_a_valid_vapid_token() -> None:
    vapid = VapidKey.from_pem(VapidKey.generate_pem(), subject="mailto:ops@shop.example")
    other = VapidKey.from_pem(VapidKey.generate_pem(), subject="mailto:ops@shop.example")
    with push_service() as service:
        adapter = WebPushAdapter(
            vapid,
            egress=EgressPolicy.parse("127.0.0.1/32"),
            resolver=push_resolver,
            ssl_context=service.client_context(),
            policy=RetryPolicy(attempts=1),
        )
        try:
            ann = service.subscribe(vapid.public_key)
            result = await adapter.send(_message(ann.endpoint, ann.keys, key="a" * 32))
            assert result.outcome == "sent", result.detail
            (delivered,) = service.delivered
            assert delivered.payload["notificationOptions"]["body"] == "Half off today"
            assert delivered.headers["topic"] == "a" * 32 and int(delivered.headers["ttl"]) > 0

            gone = service.subscribe(vapid.public_key)
            service.gone.add(gone.endpoint.rsplit("/", 1)[1])
            assert (await adapter.send(_message(gone.endpoint, gone.keys))).outcome == "unregistered"

            # A subscription made with another key: the push service refuses the token; nothing is delivered.
            foreign = service.subscribe(other.public_key)
            refused = await adapter.send(_message(foreign.endpoint, foreign.keys))
            assert refused.outcome == "rejected" and "403" in refused.detail

            # Keys that do not belong to the subscription: the browser cannot decrypt, the service refuses.
            wrong_keys = service.subscribe(vapid.public_key)
            mixed = await adapter.send(_message(wrong_keys.endpoint, ann.keys))
            assert mixed.outcome == "rejected"
            assert len(service.delivered) == 1
        finally:
            await adapter.close()


async def test_an_endpoint_inside_the_network_is_refused_without_a_request() -> None:
    vapid = VapidKey.from_pem(VapidKey.generate_pem(), subject="mailto:ops@shop.example")
    with push_service() as service:
        adapter = WebPushAdapter(
            vapid, egress=EgressPolicy(), resolver=push_resolver, ssl_context=service.client_context()
        )
        try:
            ann = service.subscribe(vapid.public_key)
            result = await adapter.send(_message(ann.endpoint, ann.keys))
            assert result.outcome == "unregistered" and "not reachable" in result.detail
            assert service.delivered == [] and service.refused == []
        finally:
            await adapter.close()
