"""SyncReplica: local edits, validated remote updates, convergence, catch-up."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from omega.crypto import DeviceKeyPair, Identity
from omega.errors import (
    CertificateError,
    ConfigurationError,
    CorruptDataError,
    InvalidSyncUpdateError,
    RevokedDeviceError,
)
from omega.protocol import SyncedMessage, encode_message
from omega.sync import (
    CONTACTS,
    CONVERSATIONS,
    SETTINGS,
    SyncReplica,
    SyncSchemas,
    decode_state_vector,
    default_schemas,
    history_document,
    sync_client_id,
)
from omega.sync._schema import SettingsSchema

ALICE = Identity.create(device_name="phone", created_at=1)
BOB = Identity.create(device_name="phone", created_at=1).user_id
CAROL = Identity.create(device_name="phone", created_at=1).user_id
KEYS = [DeviceKeyPair.generate().public_key for _ in range(3)]


def _replicas(count: int = 2) -> list[SyncReplica]:
    return [SyncReplica(key) for key in KEYS[:count]]


def test_local_edits_reach_another_replica_and_unchanged_values_make_no_update() -> None:
    phone, laptop = _replicas()
    update = phone.set(CONTACTS, {f"{BOB}/display_name": "Bob", f"{BOB}/verified": True})
    assert update is not None
    assert phone.set(CONTACTS, {f"{BOB}/display_name": "Bob"}) is None
    changes = laptop.apply(CONTACTS, update)
    assert {(c.key, c.value) for c in changes} == {
        (f"{BOB}/display_name", "Bob"),
        (f"{BOB}/verified", True),
    }
    assert laptop.entries(CONTACTS) == phone.entries(CONTACTS)
    assert laptop.get(CONTACTS, f"{BOB}/verified") is True
    assert laptop.get(CONTACTS, "missing") is None
    assert laptop.get("nothing", "x") is None
    assert laptop.entries("nothing") == {}
    assert laptop.names() == [CONTACTS]


def test_local_values_are_checked_against_the_schema() -> None:
    (phone,) = _replicas(1)
    bad = [
        (CONTACTS, {f"{BOB}/verified": "yes"}),
        (CONTACTS, {"not-a-user/verified": True}),
        (CONTACTS, {f"{BOB}/unknown": True}),
        (CONTACTS, {f"{BOB}/added_at": -1}),
        (CONTACTS, {f"{BOB}/added_at": 1.5}),
        (CONVERSATIONS, {f"{BOB}/archived": 1}),
        (SETTINGS, {"Bad Name": 1}),
        (SETTINGS, {"theme": "x" * 5000}),
        (SETTINGS, {"theme": float("nan")}),
        ("unknown", {"a": 1}),
        (history_document(BOB), {"m1": b"not a message"}),
        (history_document("a/b"), {"m1": b""}),
    ]
    for document, changes in bad:
        with pytest.raises(ConfigurationError):
            phone.set(document, changes)  # type: ignore[arg-type]
    assert phone.names() == []


def _message(text: str = "hi") -> bytes:
    from omega.protocol import MessageContent, TextContent

    content = encode_message(MessageContent(text=TextContent(text=text)))
    return encode_message(
        SyncedMessage(
            sender_id=BOB, sender_device_key=KEYS[2], timestamp=5, received_at=6, content=content
        )
    )


def test_history_entries_round_trip_as_bytes() -> None:
    phone, laptop = _replicas()
    update = phone.set(history_document(BOB), {"m1": _message()})
    assert update is not None
    [change] = laptop.apply(history_document(BOB), update)
    assert change.value == _message()
    assert laptop.get(history_document(BOB), "m1") == _message()


def _foreign(build: object) -> bytes:
    doc: Doc = Doc()  # type: ignore[type-arg]
    build(doc)  # type: ignore[operator]
    update: bytes = doc.get_update()
    return update


@pytest.mark.parametrize(
    ("document", "update", "reason"),
    [
        (CONTACTS, b"\x01\x02garbage", "malformed"),
        (CONTACTS, b"x" * 100, "malformed"),
        ("unknown", b"\x00\x00", "unknown_document"),
        (CONTACTS, _foreign(lambda d: d.get("other", type=Map).update({"a": 1})), "unknown_root"),
        (CONTACTS, _foreign(lambda d: d.get("entries", type=Map).update({"x": 1})), "schema"),
        (
            CONTACTS,
            _foreign(lambda d: d.get("entries", type=Map).update({f"{BOB}/blocked": Array([1])})),
            "schema",
        ),
        (
            history_document(BOB),
            _foreign(lambda d: d.get("entries", type=Map).update({"m": b"\xff"})),
            "schema",
        ),
    ],
)
def test_bad_remote_updates_are_refused_and_change_nothing(
    document: str, update: bytes, reason: str
) -> None:
    phone, laptop = _replicas()
    good = phone.set(CONTACTS, {f"{BOB}/blocked": True})
    assert good is not None
    laptop.apply(CONTACTS, good)
    before = {name: laptop.snapshot(name) for name in laptop.names()}
    with pytest.raises(InvalidSyncUpdateError) as raised:
        laptop.apply(document, update)
    assert raised.value.details["reason"] == reason
    assert {name: laptop.snapshot(name) for name in laptop.names()} == before


def test_updates_over_the_size_limit_are_refused() -> None:
    replica = SyncReplica(KEYS[0], max_update_size=64)
    with pytest.raises(InvalidSyncUpdateError) as raised:
        replica.apply(CONTACTS, b"\x00" * 65)
    assert raised.value.details["reason"] == "too_large"
    with pytest.raises(ConfigurationError):
        SyncReplica(KEYS[0], max_update_size=0)


def test_updates_from_revoked_or_foreign_devices_are_refused() -> None:
    import dataclasses

    second = DeviceKeyPair.generate().public_key
    with_second = ALICE.add_device(second, name="laptop", created_at=2)
    revoked = with_second.revoke_device(second, revoked_at=3)
    phone = SyncReplica(ALICE.device.device_key)
    laptop = SyncReplica(second)
    update = laptop.set(CONTACTS, {f"{BOB}/blocked": True})
    assert update is not None
    assert phone.apply(CONTACTS, update, sender=second, device_list=with_second.device_list)
    fresh = laptop.set(CONTACTS, {f"{BOB}/blocked": False})
    assert fresh is not None
    with pytest.raises(RevokedDeviceError):
        phone.apply(CONTACTS, fresh, sender=second, device_list=revoked.device_list)
    with pytest.raises(CertificateError):
        phone.apply(CONTACTS, fresh, sender=KEYS[2], device_list=revoked.device_list)
    assert phone.get(CONTACTS, f"{BOB}/blocked") is True
    assert dataclasses.replace(revoked).device_list.is_revoked(second)


def test_an_update_that_builds_on_a_missing_one_is_refused_until_caught_up() -> None:
    phone, laptop = _replicas()
    first = phone.set(CONTACTS, {f"{BOB}/display_name": "one"})
    second = phone.set(CONTACTS, {f"{BOB}/display_name": "two"})
    assert first is not None
    assert second is not None
    with pytest.raises(InvalidSyncUpdateError) as raised:
        laptop.apply(CONTACTS, second)
    assert raised.value.details["reason"] == "out_of_order"
    assert laptop.names() == []
    for name, update in phone.missing_all(laptop.state_vectors()).items():
        laptop.apply(name, update)
    assert laptop.get(CONTACTS, f"{BOB}/display_name") == "two"


def test_missing_returns_only_what_the_other_side_lacks() -> None:
    phone, laptop = _replicas()
    first = phone.set(SETTINGS, {"theme": "dark"})
    assert first is not None
    laptop.apply(SETTINGS, first)
    assert phone.missing(SETTINGS, laptop.state_vector(SETTINGS)) is None
    assert phone.missing("nothing", b"\x00") is None
    phone.set(SETTINGS, {"theme": "light", "font.size": 14})
    phone.set(CONTACTS, {f"{BOB}/display_name": "B"})
    missing = phone.missing_all(laptop.state_vectors())
    assert set(missing) == {SETTINGS, CONTACTS}
    for name, update in missing.items():
        laptop.apply(name, update)
    assert laptop.entries(SETTINGS) == {"theme": "light", "font.size": 14}
    assert phone.missing_all(laptop.state_vectors()) == {}
    assert laptop.state_vector("nothing") == b"\x00"


def test_state_vectors_decode_and_malformed_ones_are_refused() -> None:
    (phone,) = _replicas(1)
    phone.set(SETTINGS, {"a": 1, "b": 2})
    assert decode_state_vector(phone.state_vector(SETTINGS)) == {sync_client_id(KEYS[0]): 2}
    assert decode_state_vector(b"") == {}
    for bad in (b"\x01", b"\x01\x80", b"\x00\x00", b"\xff" * 11, b"\x00" * 70_000):
        with pytest.raises(InvalidSyncUpdateError):
            decode_state_vector(bad)
    with pytest.raises(InvalidSyncUpdateError):
        phone.missing(SETTINGS, b"\x05")


def test_load_restores_and_damaged_state_is_corrupt_data() -> None:
    phone, laptop = _replicas()
    phone.set(CONTACTS, {f"{BOB}/display_name": "Bob"})
    restored = SyncReplica(KEYS[0])
    restored.load(CONTACTS, [phone.snapshot(CONTACTS)])
    assert restored.entries(CONTACTS) == phone.entries(CONTACTS)
    update = restored.set(CONTACTS, {f"{BOB}/display_name": "Robert"})
    assert update is not None
    laptop.apply(CONTACTS, phone.snapshot(CONTACTS))
    laptop.apply(CONTACTS, update)
    assert laptop.get(CONTACTS, f"{BOB}/display_name") == "Robert"
    with pytest.raises(CorruptDataError):
        restored.load(CONTACTS, [b"garbage"])
    assert restored.snapshot("nothing") == SyncReplica(KEYS[1]).snapshot("nothing")


def test_schemas_registry_takes_a_groups_document() -> None:
    schemas = default_schemas()
    schemas.register("groups", SettingsSchema())
    with pytest.raises(ConfigurationError):
        schemas.register("groups", SettingsSchema())
    replica = SyncReplica(KEYS[0], schemas=schemas)
    assert replica.set("groups", {"g1": "member"}) is not None
    assert SyncSchemas().get(CONTACTS) is None


_FIELDS = st.sampled_from(["display_name", "verified", "blocked"])
_USERS = st.sampled_from([BOB, CAROL])


def _value(field: str, seed: int) -> object:
    return f"name{seed}" if field == "display_name" else bool(seed % 2)


_EDITS = st.lists(
    st.tuples(st.integers(0, 2), _USERS, _FIELDS, st.integers(0, 9), st.booleans()),
    max_size=12,
)


@settings(max_examples=25)
@given(edits=_EDITS)
def test_concurrent_edits_on_three_devices_converge(
    edits: list[tuple[int, str, str, int, bool]],
) -> None:
    replicas = _replicas(3)
    outboxes: list[list[tuple[str, bytes]]] = [[], [], []]
    for device, user, field, seed, on_settings in edits:
        if on_settings:
            document, changes = SETTINGS, {field.replace("_", "."): seed}
        else:
            document, changes = CONTACTS, {f"{user}/{field}": _value(field, seed)}
        update = replicas[device].set(document, changes)  # type: ignore[arg-type]
        if update is not None:
            outboxes[device].append((document, update))
    # Deliver every update everywhere, in a different order on each replica.
    for target, replica in enumerate(replicas):
        sources = (2, 0, 1) if target != 1 else (1, 0, 2)
        order = [item for source in sources if source != target for item in outboxes[source]]
        for document, update in order:
            replica.apply(document, update)
    for document in (CONTACTS, SETTINGS):
        assert replicas[0].entries(document) == replicas[1].entries(document)
        assert replicas[1].entries(document) == replicas[2].entries(document)
