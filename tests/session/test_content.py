"""Message content rules: every kind, every rule both ways, sizes, garbage, search text."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_helpers import ALICE, BOB, CAROL, make_user

from omega.errors import ConfigurationError, MessageDecodeError, MessageTooLargeError
from omega.protocol import (
    ContactContent,
    DeleteContent,
    DeleteScope,
    EditContent,
    GroupSyncRequest,
    GroupUpdate,
    LocationContent,
    MediaContent,
    MessageContent,
    ReactionContent,
    ReceiptContent,
    ReceiptType,
    SenderKeyDistribution,
    StickerContent,
    SyncContent,
    SyncUpdate,
    TextContent,
    TypingContent,
    encode_message,
)
from omega.session.content import (
    CONTENT_KINDS,
    EPHEMERAL_KINDS,
    MAX_CONTENT_SIZE,
    MAX_MENTIONS,
    MAX_RECEIPT_IDS,
    MAX_TTL_SECONDS,
    content_kind,
    decode_content,
    encode_content,
    searchable_text,
)

TARGET = "0192e3a4-5b6c-7d8e-9f01-23456789abcd"

SAMPLES: dict[str, Callable[[], MessageContent]] = {
    "text": lambda: MessageContent(text=TextContent(text="hello world")),
    "media": lambda: MessageContent(
        media=MediaContent(
            mime_type="image/png",
            size=1234,
            thumbnail=b"\x89PNG",
            file_hash="abc",
            width=10,
            height=20,
            file_name="cat.png",
            caption="my cat",
        )
    ),
    "location": lambda: MessageContent(
        location=LocationContent(
            latitude=48.8584, longitude=2.2945, name="Tour Eiffel", address="Paris"
        )
    ),
    "contact": lambda: MessageContent(
        contact=ContactContent(display_name="Carol", user_id=CAROL.user_id)
    ),
    "sticker": lambda: MessageContent(
        sticker=StickerContent(pack_id="p", sticker_id="s", emoji="🐱", image_hash=b"h")
    ),
    "reaction": lambda: MessageContent(
        reaction=ReactionContent(target_message_id=TARGET, emoji="👍")
    ),
    "edit": lambda: MessageContent(
        edit=EditContent(target_message_id=TARGET, text=TextContent(text="corrected"))
    ),
    "delete": lambda: MessageContent(
        delete=DeleteContent(target_message_id=TARGET, scope=DeleteScope.FOR_EVERYONE)
    ),
    "receipt": lambda: MessageContent(
        receipt=ReceiptContent(type=ReceiptType.READ, message_ids=[TARGET], timestamp=5)
    ),
    "typing": lambda: MessageContent(typing=TypingContent(typing=True)),
    "sender_key_distribution": lambda: MessageContent(
        sender_key_distribution=SenderKeyDistribution(
            version=1, group_id="g", key_id=7, chain_key=bytes(32), signature_key=bytes(32)
        )
    ),
    "group_update": lambda: MessageContent(
        group_update=GroupUpdate(group_id="a" * 64, operations=b"\x0a\x00", heads=[bytes(32)])
    ),
    "group_sync": lambda: MessageContent(
        group_sync=GroupSyncRequest(group_id="a" * 64, heads=[bytes(32)], sender_key=True)
    ),
    "sync": lambda: MessageContent(
        sync=SyncContent(updates=[SyncUpdate(document="settings", update=b"\x00\x00")])
    ),
}


def accepted(content: MessageContent) -> MessageContent:
    """``content`` after encode_content and decode_content, which must both accept it."""
    decoded = decode_content(encode_content(content))
    assert decoded == content
    return decoded


def refused(content: MessageContent, match: str, *, decode_match: str | None = None) -> None:
    """Both directions refuse ``content``: messages matching ``match`` (or ``decode_match``)."""
    with pytest.raises(ConfigurationError, match=match) as caught:
        encode_content(content)
    assert not isinstance(caught.value, MessageTooLargeError)
    with pytest.raises(MessageDecodeError, match=match if decode_match is None else decode_match):
        decode_content(encode_message(content))


def text(**fields: object) -> MessageContent:
    """A text message with the in-ciphertext envelope fields ``fields``."""
    return MessageContent(text=TextContent(text="hi"), **fields)  # type: ignore[arg-type]


# -- kinds -----------------------------------------------------------------------------


def test_samples_cover_every_kind() -> None:
    assert tuple(SAMPLES) == CONTENT_KINDS


@pytest.mark.parametrize("kind", CONTENT_KINDS)
def test_every_kind_round_trips(kind: str) -> None:
    decoded = accepted(SAMPLES[kind]())
    assert content_kind(decoded) == kind


def test_content_kinds_follow_the_oneof_field_order() -> None:
    meta = MessageContent._betterproto  # type: ignore[arg-type]
    numbers = [meta.meta_by_field_name[kind].number for kind in CONTENT_KINDS]
    assert numbers == sorted(numbers)
    assert {field.name for field in meta.oneof_field_by_group["content"]} == set(CONTENT_KINDS)


def test_only_typing_is_ephemeral() -> None:
    assert frozenset({"typing"}) == EPHEMERAL_KINDS


def test_content_kind_of_empty_content_is_empty() -> None:
    assert content_kind(MessageContent()) == ""


def test_empty_kind_bodies_are_accepted() -> None:
    # A kind whose body has only default values still names the kind on the wire.
    decoded = accepted(MessageContent(typing=TypingContent(typing=False)))
    assert content_kind(decoded) == "typing"
    assert content_kind(accepted(MessageContent(text=TextContent()))) == "text"


def test_content_without_a_kind_is_refused() -> None:
    refused(MessageContent(), "no kind")
    refused(MessageContent(reply_to=TARGET, ttl_seconds=5), "no kind")


def test_content_naming_two_kinds_on_the_wire_is_refused() -> None:
    # betterproto2 keeps both members of the oneof (protobuf would keep the
    # last); asking it which one is set raises RuntimeError. The strict decoder
    # refuses it instead.
    data = encode_message(SAMPLES["text"]()) + encode_message(SAMPLES["typing"]())
    with pytest.raises(MessageDecodeError, match="two members of its oneof 'content'"):
        decode_content(data)


def test_content_naming_two_kinds_is_refused_and_has_no_kind() -> None:
    content = MessageContent(text=TextContent(text="a"), typing=TypingContent(typing=True))
    assert content_kind(content) == ""
    assert searchable_text(content) == ""
    refused(
        content,
        r"several kinds: \['text', 'typing'\]",
        decode_match="two members of its oneof 'content': text and typing",
    )


# -- reply_to ------------------------------------------------------------------------


@pytest.mark.parametrize("reply_to", ["r", "r" * 256, "é" * 256, TARGET])
def test_reply_to_of_1_to_256_characters_is_accepted(reply_to: str) -> None:
    assert accepted(text(reply_to=reply_to)).reply_to == reply_to


@pytest.mark.parametrize("reply_to", ["", "r" * 257])
def test_reply_to_outside_1_to_256_characters_is_refused(reply_to: str) -> None:
    refused(text(reply_to=reply_to), "reply_to must be a message id of 1..256 characters")


# -- mentions -------------------------------------------------------------------------

MANY_USERS = [make_user(b"mention-%d" % index).user_id for index in range(4)]


def test_mentions_up_to_the_limit_are_accepted() -> None:
    mentions = (MANY_USERS * MAX_MENTIONS)[:MAX_MENTIONS]
    assert len(accepted(text(mentions=mentions)).mentions) == MAX_MENTIONS


def test_more_mentions_than_the_limit_are_refused() -> None:
    mentions = (MANY_USERS * (MAX_MENTIONS + 1))[: MAX_MENTIONS + 1]
    refused(text(mentions=mentions), f"more than {MAX_MENTIONS} mentions")


def test_upper_case_mentions_are_accepted() -> None:
    accepted(text(mentions=[ALICE.user_id.upper(), BOB.user_id]))


@pytest.mark.parametrize(
    "mention",
    [
        "",
        "bob",
        ALICE.user_id[:-1],
        ALICE.user_id[:-1] + ("q" if ALICE.user_id[-1] != "q" else "p"),
        "x" * 10_000,
    ],
)
def test_a_mention_that_is_not_a_user_id_is_refused(mention: str) -> None:
    refused(text(mentions=[ALICE.user_id, mention]), "is not a user id")


def test_a_long_bad_mention_is_truncated_in_the_message() -> None:
    with pytest.raises(ConfigurationError) as caught:
        encode_content(text(mentions=["x" * 10_000]))
    assert len(caught.value.message) < 200


# -- ttl_seconds ---------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [1, 60, MAX_TTL_SECONDS])
def test_ttl_within_bounds_is_accepted(ttl: int) -> None:
    assert accepted(text(ttl_seconds=ttl)).ttl_seconds == ttl


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL_SECONDS + 1, 2**31 - 1, -(2**31)])
def test_ttl_outside_bounds_is_refused(ttl: int) -> None:
    refused(text(ttl_seconds=ttl), f"ttl_seconds must be in 1..{MAX_TTL_SECONDS}")


def test_max_ttl_is_a_year_and_a_day() -> None:
    assert MAX_TTL_SECONDS == 366 * 24 * 3600


# -- targeted kinds ------------------------------------------------------------------

TARGETED = {
    "reaction": lambda target: MessageContent(reaction=ReactionContent(target_message_id=target)),
    "edit": lambda target: MessageContent(
        edit=EditContent(target_message_id=target, text=TextContent(text="new"))
    ),
    "delete": lambda target: MessageContent(delete=DeleteContent(target_message_id=target)),
}


@pytest.mark.parametrize("kind", sorted(TARGETED))
@pytest.mark.parametrize("target", ["t", "t" * 256])
def test_targets_of_1_to_256_characters_are_accepted(kind: str, target: str) -> None:
    decoded = accepted(TARGETED[kind](target))
    assert getattr(decoded, kind).target_message_id == target


@pytest.mark.parametrize("kind", sorted(TARGETED))
@pytest.mark.parametrize("target", ["", "t" * 257])
def test_targets_outside_1_to_256_characters_are_refused(kind: str, target: str) -> None:
    refused(TARGETED[kind](target), f"{kind} needs a target message id of 1..256 characters")


def test_an_edit_without_text_is_refused() -> None:
    refused(
        MessageContent(edit=EditContent(target_message_id=TARGET)), "an edit carries the new text"
    )


def test_an_edit_to_empty_text_is_accepted() -> None:
    content = MessageContent(edit=EditContent(target_message_id=TARGET, text=TextContent()))
    decoded = accepted(content)
    assert decoded.edit is not None
    assert decoded.edit.text == TextContent()


# -- location ------------------------------------------------------------------------


def location(latitude: float, longitude: float) -> MessageContent:
    return MessageContent(location=LocationContent(latitude=latitude, longitude=longitude))


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [(-90.0, -180.0), (90.0, 180.0), (0.0, 0.0), (-0.0, -0.0), (89.999999, -179.999999)],
)
def test_locations_within_bounds_are_accepted(latitude: float, longitude: float) -> None:
    accepted(location(latitude, longitude))


@pytest.mark.parametrize(
    "latitude",
    [
        math.nextafter(90.0, 91.0),
        math.nextafter(-90.0, -91.0),
        1e308,
        math.nan,
        math.inf,
        -math.inf,
    ],
)
def test_latitudes_outside_bounds_are_refused(latitude: float) -> None:
    refused(location(latitude, 0.0), "latitude must be in -90..90")


@pytest.mark.parametrize(
    "longitude",
    [math.nextafter(180.0, 181.0), math.nextafter(-180.0, -181.0), math.nan, math.inf, -math.inf],
)
def test_longitudes_outside_bounds_are_refused(longitude: float) -> None:
    refused(location(0.0, longitude), "longitude must be in -180..180")


# -- receipts -------------------------------------------------------------------------


def receipt(message_ids: list[str]) -> MessageContent:
    return MessageContent(
        receipt=ReceiptContent(type=ReceiptType.DELIVERED, message_ids=message_ids)
    )


@pytest.mark.parametrize("count", [1, 2, MAX_RECEIPT_IDS])
def test_receipts_naming_1_to_1000_ids_are_accepted(count: int) -> None:
    ids = [f"m{index}" for index in range(count)]
    decoded = accepted(receipt(ids))
    assert decoded.receipt is not None
    assert decoded.receipt.message_ids == ids


@pytest.mark.parametrize("count", [0, MAX_RECEIPT_IDS + 1])
def test_receipts_naming_no_ids_or_too_many_are_refused(count: int) -> None:
    refused(receipt([f"m{index}" for index in range(count)]), "a receipt names 1..1000 message ids")


def test_receipt_ids_of_1_and_256_characters_are_accepted() -> None:
    accepted(receipt(["m", "m" * 256]))


@pytest.mark.parametrize("bad_id", ["", "m" * 257])
def test_receipt_ids_outside_1_to_256_characters_are_refused(bad_id: str) -> None:
    refused(receipt([TARGET, bad_id]), "message ids of 1..256 characters")


# -- sizes --------------------------------------------------------------------------


def _text_of_encoded_size(size: int) -> MessageContent:
    """A text message whose encoding is exactly ``size`` bytes."""
    overhead = len(encode_message(MessageContent(text=TextContent(text="x" * (size - 10)))))
    content = MessageContent(text=TextContent(text="x" * (size - 10 - (overhead - size))))
    assert len(encode_message(content)) == size
    return content


def test_content_of_exactly_the_size_limit_is_accepted() -> None:
    content = _text_of_encoded_size(MAX_CONTENT_SIZE)
    assert len(encode_content(content)) == MAX_CONTENT_SIZE
    assert decode_content(encode_message(content)) == content


def test_content_one_byte_over_the_limit_is_refused_both_ways() -> None:
    content = _text_of_encoded_size(MAX_CONTENT_SIZE + 1)
    with pytest.raises(MessageTooLargeError) as caught:
        encode_content(content)
    assert caught.value.details == {"size": MAX_CONTENT_SIZE + 1, "limit": MAX_CONTENT_SIZE}
    assert isinstance(caught.value, ConfigurationError)
    with pytest.raises(MessageDecodeError, match="exceeds"):
        decode_content(encode_message(content))


def test_rules_are_checked_before_the_size() -> None:
    # An oversized content that also breaks a rule is refused for the rule.
    content = _text_of_encoded_size(MAX_CONTENT_SIZE + 1)
    content.ttl_seconds = 0
    with pytest.raises(ConfigurationError, match="ttl_seconds") as caught:
        encode_content(content)
    assert not isinstance(caught.value, MessageTooLargeError)


# -- garbage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no kind
        b"\xff",  # truncated tag
        b"\x0a\x05abc",  # text announces 5 bytes, 3 remain
        b"\x0a\x02\x0a\xff",  # text's string is truncated
        b"\x0a\x03\x0a\x01\xff",  # text's string is not UTF-8
        b"\x08\x01",  # field 1 (text) as a varint
        b"\x0b",  # a group
        b"\x1a\x09\x09" + b"\x00\x00\x00\x00\x00\x00\xf8\x7f",  # latitude NaN
        b"\x52\x00\x80\x01\x00",  # typing, then ttl_seconds 0
        b"\x0a\x00" * 2 + b"\x82\x01\x00",  # text, then an empty reply_to
    ],
)
def test_garbage_is_refused_with_a_decode_error(data: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        decode_content(data)


@settings(max_examples=200)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_raise_nothing_but_a_decode_error(data: bytes) -> None:
    try:
        content = decode_content(data)
    except MessageDecodeError:
        return
    # What is accepted is valid content: it encodes again and names a kind.
    assert content_kind(content) in CONTENT_KINDS
    assert decode_content(encode_content(content)) == content


@settings(max_examples=100)
@given(
    base=st.sampled_from(CONTENT_KINDS),
    noise=st.binary(min_size=1, max_size=64),
    position=st.integers(min_value=0, max_value=200),
)
def test_corrupted_valid_content_raises_nothing_but_a_decode_error(
    base: str, noise: bytes, position: int
) -> None:
    data = bytearray(encode_message(SAMPLES[base]()))
    position %= len(data)
    for offset, byte in enumerate(noise):
        if position + offset < len(data):
            data[position + offset] ^= byte
    with contextlib.suppress(MessageDecodeError):
        decode_content(bytes(data))


@settings(max_examples=60)
@given(
    reply_to=st.one_of(st.none(), st.text(max_size=300)),
    mentions=st.lists(st.one_of(st.sampled_from(MANY_USERS), st.text(max_size=70)), max_size=3),
    ttl=st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
    latitude=st.floats(allow_nan=True, allow_infinity=True),
    longitude=st.floats(allow_nan=True, allow_infinity=True),
)
def test_encode_and_decode_agree_on_every_content(
    reply_to: str | None, mentions: list[str], ttl: int | None, latitude: float, longitude: float
) -> None:
    content = MessageContent(
        location=LocationContent(latitude=latitude, longitude=longitude),
        reply_to=reply_to,
        mentions=mentions,
        ttl_seconds=ttl,
    )
    try:
        data = encode_content(content)
    except ConfigurationError as exc:
        with pytest.raises(MessageDecodeError, match=re.escape(exc.message)):
            decode_content(encode_message(content))
        return
    assert decode_content(data) == content


# -- searchable text ----------------------------------------------------------------

SEARCH_TEXT = {
    "text": "hello world",
    "media": "my cat cat.png",
    "location": "Tour Eiffel Paris",
    "contact": "Carol",
    "sticker": "🐱",
    "reaction": "",
    "edit": "corrected",
    "delete": "",
    "receipt": "",
    "typing": "",
    "sender_key_distribution": "",
    "group_update": "",
    "group_sync": "",
    "sync": "",
}


@pytest.mark.parametrize("kind", CONTENT_KINDS)
def test_searchable_text_of_each_kind(kind: str) -> None:
    assert searchable_text(SAMPLES[kind]()) == SEARCH_TEXT[kind]


def test_searchable_text_skips_empty_parts() -> None:
    assert searchable_text(MessageContent(media=MediaContent(caption="only caption"))) == (
        "only caption"
    )
    assert searchable_text(MessageContent(media=MediaContent(file_name="a.pdf"))) == "a.pdf"
    assert searchable_text(MessageContent(media=MediaContent(mime_type="x/y"))) == ""
    assert searchable_text(MessageContent(location=LocationContent(address="Rue"))) == "Rue"
    assert searchable_text(MessageContent(location=LocationContent(name="Home"))) == "Home"
    assert searchable_text(MessageContent(location=LocationContent())) == ""


def test_searchable_text_of_an_edit_without_text_and_of_nothing() -> None:
    assert searchable_text(MessageContent(edit=EditContent(target_message_id=TARGET))) == ""
    assert searchable_text(MessageContent()) == ""
