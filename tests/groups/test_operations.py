"""Signed group operations: the exact signed bytes, ids, and every field check."""

from __future__ import annotations

import hashlib

import pytest
from group_helpers import NOW, device, new_group, user

from omega.crypto import LocalDevice
from omega.errors import InvalidGroupOperationError
from omega.groups import (
    GROUP_OPERATION_CONTEXT,
    GROUP_OPERATION_ID_CONTEXT,
    OperationKind,
    derive_group_id,
    operation_id,
    verify_operation,
)
from omega.protocol import (
    GroupAddMember,
    GroupCreate,
    GroupLeave,
    GroupOperation,
    GroupPermissions,
    GroupRename,
    GroupSetAvatar,
    GroupSetRole,
    SignedGroupOperation,
    decode_message,
    encode_message,
)

SALT = bytes(range(16))
GROUP_ID = derive_group_id(user(0), SALT)
PARENT = bytes(32)


def sign(operation: GroupOperation, signer: LocalDevice) -> bytes:
    """Sign exactly as docs/groups.md says, independently of the library's signer."""
    data = encode_message(operation)
    return encode_message(
        SignedGroupOperation(
            operation=data,
            signature=signer.key_pair.sign(GROUP_OPERATION_CONTEXT + data),
            certificate=signer.certificate.to_signed(),
        )
    )


def change(author: int = 0, **fields: object) -> GroupOperation:
    base: dict[str, object] = {
        "version": 1,
        "group_id": GROUP_ID,
        "parents": [PARENT],
        "author_id": user(author),
        "timestamp": NOW,
    }
    base.update(fields)
    return GroupOperation(**base)  # type: ignore[arg-type]


def genesis(**fields: object) -> GroupOperation:
    create = {"salt": SALT, "name": "g", "max_members": 256}
    create.update(fields.pop("create", {}))  # type: ignore[call-overload]
    fields.setdefault("parents", [])
    return change(create=GroupCreate(**create), **fields)  # type: ignore[arg-type]


def test_a_valid_genesis_verifies_and_its_id_is_the_hash_of_the_operation_bytes() -> None:
    data = sign(genesis(), device(0))
    operation = verify_operation(data)
    inner = decode_message(SignedGroupOperation, data).operation
    assert operation.op_id == hashlib.sha256(GROUP_OPERATION_ID_CONTEXT + inner).digest()
    assert operation.op_id == operation_id(inner)
    assert operation.kind is OperationKind.CREATE
    assert operation.author_id == user(0)
    assert operation.device_key == device(0).device_key
    assert operation.encoded == data


def test_group_id_is_derived_from_creator_and_salt() -> None:
    creator = user(0).encode()
    expected = hashlib.sha256(b"omega/group-id/v1" + bytes([len(creator)]) + creator + SALT)
    assert expected.hexdigest() == GROUP_ID


def test_every_change_kind_verifies() -> None:
    cases = {
        OperationKind.ADD_MEMBER: {"add_member": GroupAddMember(user_id=user(1))},
        OperationKind.LEAVE: {"leave": GroupLeave()},
        OperationKind.SET_ROLE: {"set_role": GroupSetRole(user_id=user(1), role=1)},
        OperationKind.RENAME: {"rename": GroupRename(name="new")},
        OperationKind.SET_AVATAR: {"set_avatar": GroupSetAvatar(avatar_hash=bytes(32))},
    }
    for kind, fields in cases.items():
        assert verify_operation(sign(change(**fields), device(0))).kind is kind


def _reason(data: bytes) -> str:
    with pytest.raises(InvalidGroupOperationError) as info:
        verify_operation(data)
    return str(info.value.details["reason"])


def test_a_forged_signature_is_refused() -> None:
    data = sign(change(leave=GroupLeave()), device(0))
    envelope = decode_message(SignedGroupOperation, data)
    envelope.signature = bytes(64)
    assert _reason(encode_message(envelope)) == "signature"


def test_a_device_of_another_user_cannot_sign_for_the_author() -> None:
    assert _reason(sign(change(author=0, leave=GroupLeave()), device(1))) == "signature"


def test_tampered_operation_bytes_are_refused() -> None:
    data = sign(change(rename=GroupRename(name="a")), device(0))
    envelope = decode_message(SignedGroupOperation, data)
    envelope.operation = encode_message(change(rename=GroupRename(name="b")))
    assert _reason(encode_message(envelope)) == "signature"


def test_missing_certificate_and_garbage_are_refused() -> None:
    data = sign(change(leave=GroupLeave()), device(0))
    envelope = decode_message(SignedGroupOperation, data)
    envelope.certificate = None
    assert _reason(encode_message(envelope)) == "certificate"
    assert _reason(b"\xff\xff") == "malformed"
    assert _reason(b"\x0a" + bytes([0x80, 0x80, 0x01]) + bytes(9000)) == "malformed"


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (change(version=2, leave=GroupLeave()), "version"),
        (change(author_id="nobody", leave=GroupLeave()), "user_id"),
        (change(), "change"),
        (
            change(leave=GroupLeave(), rename=GroupRename(name="x")),
            "malformed",
        ),  # the strict decoder refuses two oneof members
        (change(parents=[bytes(31)], leave=GroupLeave()), "parents"),
        (change(parents=[b"\x02" * 32, b"\x01" * 32], leave=GroupLeave()), "parents"),
        (change(parents=[b"\x01" * 32, b"\x01" * 32], leave=GroupLeave()), "parents"),
        (change(parents=[i.to_bytes(32, "big") for i in range(65)], leave=GroupLeave()), "parents"),
        (change(parents=[], leave=GroupLeave()), "parents"),
        (change(timestamp=-1, leave=GroupLeave()), "timestamp"),
        (change(group_id="short", leave=GroupLeave()), "group_id"),
        (change(add_member=GroupAddMember(user_id="x")), "user_id"),
        (change(add_member=GroupAddMember(user_id=user(1).upper())), "user_id"),
        (change(set_role=GroupSetRole(user_id=user(1), role=7)), "role"),
        (change(rename=GroupRename(name="a\x00b")), "name"),
        (change(rename=GroupRename(name="x" * 129)), "name"),
        (change(set_avatar=GroupSetAvatar(avatar_hash=bytes(5))), "avatar"),
        (genesis(parents=[PARENT]), "parents"),
        (genesis(create={"salt": bytes(15)}), "salt"),
        (genesis(group_id="0" * 64), "group_id"),
        (genesis(create={"max_members": 0}), "max_members"),
        (genesis(create={"permissions": GroupPermissions(send_messages=9)}), "permissions"),
    ],
)
def test_field_rules(operation: GroupOperation, reason: str) -> None:
    assert _reason(sign(operation, device(0))) == reason


def test_the_library_signs_what_an_independent_verifier_accepts() -> None:
    _, operations = new_group(3)
    for data in operations:
        envelope = decode_message(SignedGroupOperation, data)
        assert envelope.certificate == device(0).certificate.to_signed()
        assert verify_operation(data).author_id == user(0)
