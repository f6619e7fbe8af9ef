"""The device link protocol, sans-I/O: both sides back to back, and every refusal."""

from __future__ import annotations

import dataclasses

import pytest

from omega.crypto import Identity
from omega.errors import (
    ConfigurationError,
    DeviceLinkError,
    InvalidLinkCodeError,
    LinkCodeExpiredError,
    LocalProtocolError,
)
from omega.protocol import LinkFinished, LinkHello, LinkWelcome, decode_message, encode_message
from omega.sync import (
    MAX_LINK_ATTEMPTS,
    DeviceLinkCode,
    LinkOffer,
    LinkRequest,
    decode_link_message,
)
from omega.transport.address import Address

NOW = 1_700_000_000_000
HERE = (Address.parse("/memory/link-test"),)


def _offer(identity: Identity | None = None) -> LinkOffer:
    identity = identity or Identity.create(device_name="phone", created_at=1, display_name="Ann")
    return LinkOffer.create(
        identity,
        link_addresses=HERE,
        now=NOW,
        rng=__import__("os").urandom,
        addresses=(Address.parse("/memory/phone"),),
        mailboxes=("https://store.example",),
    )


def _request(offer: LinkOffer, name: str = "laptop") -> LinkRequest:
    code = DeviceLinkCode.parse(offer.code.to_text())
    return LinkRequest(code, device_name=name, now=NOW + 1, rng=__import__("os").urandom)


def test_linking_end_to_end_gives_both_sides_the_same_new_device_list() -> None:
    offer = _offer()
    request = _request(offer)
    welcome = offer.receive_hello(request.hello(), now=NOW + 2)
    linked = request.receive_welcome(welcome)
    with pytest.raises(LocalProtocolError):
        offer.linked_confirmation()
    identity = offer.receive_finished(linked.finished)
    assert offer.linked is identity
    request.receive_linked(offer.linked_confirmation())
    with pytest.raises(DeviceLinkError):
        request.receive_linked(linked.finished)
    assert linked.verification_code == offer.verification_code
    assert len(linked.verification_code) == 7
    assert linked.identity.user_id == identity.user_id
    assert linked.identity.display_name == "Ann"
    assert linked.identity.device_list.sequence == 2
    assert linked.identity.device_list.to_signed() == identity.device_list.to_signed()
    assert identity.device_list.device(request.device.public_key).device_name == "laptop"
    assert linked.identity.device.device_key == request.device.public_key
    assert linked.addresses == (Address.parse("/memory/phone"),)
    assert linked.mailboxes == ("https://store.example",)
    assert offer.device_key == request.device.public_key
    with pytest.raises(LinkCodeExpiredError):
        offer.receive_hello(request.hello(), now=NOW + 3)
    with pytest.raises(LocalProtocolError):
        request.receive_welcome(welcome)


def test_code_text_round_trips_any_case_and_refuses_damage() -> None:
    offer = _offer()
    text = offer.code.to_text()
    assert text == text.upper()
    assert text.startswith("OMEGA-LINK:")
    assert DeviceLinkCode.parse("  " + text.lower() + "\n") == offer.code
    flipped = text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:]
    for bad in ("", "hello", "OMEGA-LINK:", "OMEGA-LINK:!!!!", flipped, "OMEGA-LINK:" + "A" * 3000):
        with pytest.raises(InvalidLinkCodeError):
            DeviceLinkCode.parse(bad)
    with pytest.raises(InvalidLinkCodeError):
        DeviceLinkCode.parse(123)  # type: ignore[arg-type]
    for change in (
        {"secret": b"short"},
        {"identity_key": bytes(32)},
        {"addresses": ()},
        {"expires_at": 0},
    ):
        broken = dataclasses.replace(offer.code, **change)  # type: ignore[arg-type]
        with pytest.raises(InvalidLinkCodeError):
            DeviceLinkCode.parse(broken.to_text())


def test_a_forged_code_is_refused_and_the_offer_is_spent_after_three_failures() -> None:
    offer = _offer()
    forged = dataclasses.replace(offer.code, secret=bytes(32))
    for attempt in range(MAX_LINK_ATTEMPTS):
        request = LinkRequest(forged, device_name="evil", now=NOW, rng=__import__("os").urandom)
        with pytest.raises(DeviceLinkError) as raised:
            offer.receive_hello(request.hello(), now=NOW + 1)
        assert not isinstance(raised.value, LinkCodeExpiredError) or attempt == MAX_LINK_ATTEMPTS
    with pytest.raises(LinkCodeExpiredError):
        offer.receive_hello(_request(offer).hello(), now=NOW + 1)
    assert offer.linked is None


def test_expired_codes_are_refused_on_both_sides() -> None:
    offer = _offer()
    code = DeviceLinkCode.parse(offer.code.to_text())
    with pytest.raises(LinkCodeExpiredError):
        LinkRequest(code, device_name="late", now=code.expires_at, rng=__import__("os").urandom)
    request = _request(offer)
    with pytest.raises(LinkCodeExpiredError):
        offer.receive_hello(request.hello(), now=code.expires_at)
    with pytest.raises(LinkCodeExpiredError):
        offer.receive_hello(request.hello(), now=NOW)


def test_tampered_messages_are_refused() -> None:
    offer = _offer()
    request = _request(offer)
    hello = decode_message(LinkHello, request.hello())
    renamed = encode_message(dataclasses.replace(hello, device_name="other"))
    with pytest.raises(DeviceLinkError):
        offer.receive_hello(renamed, now=NOW + 1)
    with pytest.raises(DeviceLinkError):
        offer.receive_hello(b"\xff\xff", now=NOW + 1)
    welcome_bytes = offer.receive_hello(request.hello(), now=NOW + 1)
    welcome = decode_message(LinkWelcome, welcome_bytes)
    sealed = bytearray(welcome.sealed_provision)
    sealed[0] ^= 1
    with pytest.raises(DeviceLinkError):
        request.receive_welcome(
            encode_message(dataclasses.replace(welcome, sealed_provision=bytes(sealed)))
        )
    with pytest.raises(DeviceLinkError):
        request.receive_welcome(encode_message(dataclasses.replace(welcome, mac=bytes(32))))
    linked = request.receive_welcome(welcome_bytes)
    with pytest.raises(DeviceLinkError):
        offer.receive_finished(encode_message(LinkFinished(mac=bytes(32))))
    with pytest.raises(LinkCodeExpiredError):
        offer.receive_finished(linked.finished)
    assert offer.linked is None


def test_a_device_certificate_not_signed_by_the_identity_is_refused() -> None:
    # The welcome comes from a device of ANOTHER identity that learnt the secret.
    offer = _offer()
    request = _request(offer)
    impostor = LinkOffer(
        Identity.create(device_name="x", created_at=1),
        offer.code,
        rng=__import__("os").urandom,
    )
    with pytest.raises(DeviceLinkError):
        request.receive_welcome(impostor.receive_hello(request.hello(), now=NOW + 1))


def test_bad_arguments_and_states() -> None:
    identity = Identity.create(device_name="phone", created_at=1)
    with pytest.raises(ConfigurationError):
        LinkOffer.create(identity, link_addresses=(), now=NOW, rng=__import__("os").urandom)
    with pytest.raises(ConfigurationError):
        LinkOffer.create(
            identity, link_addresses=HERE, now=NOW, rng=__import__("os").urandom, lifetime_ms=0
        )
    offer = _offer(identity)
    with pytest.raises(ConfigurationError):
        _request(offer, name="")
    with pytest.raises(LocalProtocolError):
        offer.receive_finished(b"")
    with pytest.raises(LocalProtocolError):
        _request(offer).receive_linked(b"")
    with pytest.raises(DeviceLinkError):
        decode_link_message(LinkHello, b"\x0a\x01")
