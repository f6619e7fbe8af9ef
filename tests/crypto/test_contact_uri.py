"""omega:// contact URIs: parsing untrusted text and the canonical form."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import MAX_URI_LENGTH, ContactUri, IdentityKeyPair
from omega.crypto._text import label_problem
from omega.errors import ConfigurationError, InvalidUriError

USER = IdentityKeyPair.from_seed(bytes([1]) * 32)
UID = USER.user_id


def test_plain_uri() -> None:
    uri = ContactUri.parse(f"omega://{UID}")
    assert uri == ContactUri(UID)
    assert uri.display_name is None
    assert uri.identity_key == USER.public_key
    assert str(uri) == f"omega://{UID}"


def test_uri_with_name_round_trips() -> None:
    uri = ContactUri(UID, "Zoë & Bob+1 / ü")
    text = str(uri)
    assert text == f"omega://{UID}?name=Zo%C3%AB%20%26%20Bob%2B1%20%2F%20%C3%BC"
    assert ContactUri.parse(text) == uri


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (f"  omega://{UID}?name=Ann \n", "Ann"),
        (f"OMEGA://{UID.upper()}", None),
        (f"Omega://{UID}?name=Ann+Lee", "Ann Lee"),
        (f"omega://{UID}?name=Ann%2bLee", "Ann+Lee"),
        (f"omega://{UID}?name=", None),
        (f"omega://{UID}?name", None),
        (f"omega://{UID}?", None),
        (f"omega://{UID}?v=2&name=Ann&device=%zz&&x", "Ann"),
        (f"omega://{UID}?name=Jos%C3%A9", "José"),
        (f"omega://{UID}?name=José", "José"),
        (f"omega://{UID}?name=" + "%41" * 64, "A" * 64),
    ],
)
def test_accepted_forms(text: str, name: str | None) -> None:
    uri = ContactUri.parse(text)
    assert uri.user_id == UID
    assert uri.display_name == name


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"https://{UID}", "must start with 'omega://'"),
        (f"omega:{UID}", "must start with 'omega://'"),
        (f"omega:/{UID}", "must start with 'omega://'"),
        (UID, "must start with 'omega://'"),
        ("", "must start with 'omega://'"),
        (f"\u212a\u212a://{UID}", "must start with 'omega://'"),  # Kelvin signs lower to "k"
        (f"\u0130mega://{UID}", "must start with 'omega://'"),
        ("omega://", "missing the user id"),
        ("omega://?name=Ann", "missing the user id"),
        (f"omega://{UID[:-1]}x", "checksum mismatch, possibly mistyped"),
        (f"omega://{UID[:-1]}", "invalid user id"),
        (f"omega://me@{UID}", "invalid user id"),
        (f"omega://{UID}:443", "invalid user id"),
        (f"omega://{UID}/", "no path"),
        (f"omega://{UID}/profile", "no path"),
        (f"omega://{UID}#frag", "no fragment"),
        (f"omega://{UID}?name=Ann#frag", "no fragment"),
        (f"omega://{UID}?name=%zz", "bad percent-encoding"),
        (f"omega://{UID}?name=%4", "bad percent-encoding"),
        (f"omega://{UID}?name=100%", "bad percent-encoding"),
        (f"omega://{UID}?name=%ff", "not valid UTF-8"),
        (f"omega://{UID}?name=%C3", "not valid UTF-8"),
        (f"omega://{UID}?name=\ud800", "not valid UTF-8"),
        (f"omega://{UID}?name=" + "%41" * 65, "maximum is 64"),
        (f"omega://{UID}?name=a%0Ab", "control character"),
        (f"omega://{UID}?name=%E2%80%AEevil", "control character"),
        (f"omega://{UID}?name=a&name=b", "repeats"),
        (f"omega://{UID}?name=" + "a" * MAX_URI_LENGTH, "maximum is 2048"),
    ],
)
def test_refused_forms(text: str, reason: str) -> None:
    with pytest.raises(InvalidUriError, match=reason):
        ContactUri.parse(text)


def test_constructor_validates_and_normalises() -> None:
    assert ContactUri(UID.upper()).user_id == UID
    with pytest.raises(ConfigurationError, match="checksum"):
        ContactUri(UID[:-1] + "x")
    with pytest.raises(ConfigurationError, match="display name"):
        ContactUri(UID, "")
    with pytest.raises(ConfigurationError, match="display name"):
        ContactUri(UID, "a\tb")


valid_names = st.text(min_size=1, max_size=64).filter(
    lambda name: label_problem(name, max_bytes=64, allow_empty=False) is None
)


@settings(max_examples=200)
@given(name=st.none() | valid_names, upper=st.booleans(), padding=st.sampled_from(["", " ", "\n"]))
def test_round_trip_property(name: str | None, upper: bool, padding: str) -> None:
    uri = ContactUri(UID, name)
    text = str(uri)
    assert ContactUri.parse(padding + text + padding) == uri
    assert str(ContactUri.parse(text)) == text
    if upper and name is None:
        assert ContactUri.parse(text.upper()) == uri


@settings(max_examples=200)
@given(text=st.text(max_size=200))
def test_parse_only_raises_invalid_uri(text: str) -> None:
    with contextlib.suppress(InvalidUriError):
        ContactUri.parse(f"omega://{UID}?" + text)
