"""Group operations: build, sign and verify one ``SignedGroupOperation`` (docs/groups.md)."""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
from dataclasses import dataclass, field

from omega.crypto import (
    LocalDevice,
    public_key_from_user_id,
    user_id_from_public_key,
    verify_device_certificate,
    verify_signature,
)
from omega.crypto._text import label_problem
from omega.errors import CryptoError, DecodeError, InvalidGroupOperationError
from omega.protocol import (
    GroupCreate,
    GroupOperation,
    GroupPermissions,
    MemberRole,
    PermissionLevel,
    SignedDeviceCertificate,
    SignedGroupOperation,
    decode_message,
    encode_message,
)

__all__ = [
    "GROUP_ID_CONTEXT",
    "GROUP_OPERATION_CONTEXT",
    "GROUP_OPERATION_ID_CONTEXT",
    "GROUP_OPERATION_VERSION",
    "MAX_AVATAR_HASH_SIZE",
    "MAX_GROUP_NAME_BYTES",
    "MAX_PARENTS",
    "MAX_SIGNED_OPERATION_SIZE",
    "OperationKind",
    "Permissions",
    "VerifiedOperation",
    "derive_group_id",
    "operation_id",
    "sign_operation",
    "verify_operation",
]

GROUP_OPERATION_VERSION = 1
"""``GroupOperation.version`` of this protocol."""

GROUP_OPERATION_CONTEXT = b"omega/group-operation/v1"
"""Domain-separation prefix of the device signature over an encoded ``GroupOperation``."""

GROUP_OPERATION_ID_CONTEXT = b"omega/group-operation-id/v1"
"""Prefix hashed before the encoded ``GroupOperation`` to make its id."""

GROUP_ID_CONTEXT = b"omega/group-id/v1"
"""Prefix hashed before the creator's user id and the salt to make a group id."""

MAX_SIGNED_OPERATION_SIZE = 8192
"""Largest encoded ``SignedGroupOperation`` accepted, in bytes."""

MAX_PARENTS = 64
"""Most parents one operation may name."""

MAX_GROUP_NAME_BYTES = 128
"""Longest group name, in UTF-8 bytes."""

MAX_AVATAR_HASH_SIZE = 32
"""An avatar hash is empty or exactly this many bytes (SHA-256 of the image)."""

SALT_SIZE = 16
HASH_SIZE = 32


class OperationKind(enum.Enum):
    """What a group operation changes: the set field of ``GroupOperation.change``."""

    CREATE = "create"
    ADD_MEMBER = "add_member"
    REMOVE_MEMBER = "remove_member"
    LEAVE = "leave"
    SET_ROLE = "set_role"
    RENAME = "rename"
    SET_AVATAR = "set_avatar"
    SET_PERMISSIONS = "set_permissions"


@dataclass(frozen=True, slots=True)
class Permissions:
    """Lowest role allowed to do each action in a group (``GroupPermissions``)."""

    send_messages: PermissionLevel = PermissionLevel.EVERYONE
    """Who may send group messages."""
    add_members: PermissionLevel = PermissionLevel.ADMINS
    """Who may add members."""
    edit_info: PermissionLevel = PermissionLevel.ADMINS
    """Who may rename the group or change its avatar."""
    remove_members: PermissionLevel = PermissionLevel.ADMINS
    """Who may remove members (and delete others' messages for everyone)."""

    def to_proto(self) -> GroupPermissions:
        """The wire form."""
        return GroupPermissions(
            send_messages=self.send_messages,
            add_members=self.add_members,
            edit_info=self.edit_info,
            remove_members=self.remove_members,
        )

    @classmethod
    def from_proto(cls, message: GroupPermissions | None) -> Permissions:
        """Read the wire form; raises :class:`ValueError` for an unknown level."""
        message = message or GroupPermissions()
        levels = [
            message.send_messages,
            message.add_members,
            message.edit_info,
            message.remove_members,
        ]
        known = {int(level) for level in PermissionLevel}
        if any(int(level) not in known for level in levels):
            raise ValueError("unknown permission level")
        return cls(*(PermissionLevel(int(level)) for level in levels))


@dataclass(frozen=True, slots=True)
class VerifiedOperation:
    """A signed group operation that passed :func:`verify_operation`."""

    op_id: bytes
    """SHA-256 of :data:`GROUP_OPERATION_ID_CONTEXT` and the operation's bytes."""
    group_id: str
    """The group."""
    parents: tuple[bytes, ...]
    """Ids of the operations it follows, sorted."""
    author_id: str
    """User id of the author."""
    device_key: bytes
    """Ed25519 key of the author's device that signed it."""
    timestamp: int
    """Unix milliseconds, as the author's clock said (informative only)."""
    kind: OperationKind
    """What it changes."""
    target_id: str = ""
    """The member added, removed or whose role is set."""
    role: MemberRole = MemberRole.MEMBER
    """The new role (:attr:`OperationKind.SET_ROLE`)."""
    name: str = ""
    """The new name (create, rename)."""
    avatar_hash: bytes = b""
    """The new avatar hash (create, set_avatar)."""
    permissions: Permissions | None = None
    """The new permissions (create, set_permissions)."""
    max_members: int = 0
    """The member limit (create)."""
    encoded: bytes = field(default=b"", repr=False)
    """The encoded ``SignedGroupOperation``, exactly as received or sent."""


def operation_id(operation_bytes: bytes) -> bytes:
    """The id of an encoded ``GroupOperation``."""
    return hashlib.sha256(GROUP_OPERATION_ID_CONTEXT + operation_bytes).digest()


def derive_group_id(creator_id: str, salt: bytes) -> str:
    """``hex(SHA-256("omega/group-id/v1" || len(creator) (1) || creator (UTF-8) || salt))``."""
    creator = creator_id.encode("utf-8")
    digest = hashlib.sha256(GROUP_ID_CONTEXT + bytes([len(creator)]) + creator + salt)
    return digest.hexdigest()


def sign_operation(operation: GroupOperation, device: LocalDevice) -> bytes:
    """Encode ``operation``, sign it with ``device`` and return the ``SignedGroupOperation``."""
    operation_bytes = encode_message(operation)
    signature = device.key_pair.sign(GROUP_OPERATION_CONTEXT + operation_bytes)
    return encode_message(
        SignedGroupOperation(
            operation=operation_bytes,
            signature=signature,
            certificate=device.certificate.to_signed(),
        )
    )


def _refuse(reason: str, message: str) -> InvalidGroupOperationError:
    return InvalidGroupOperationError(message, details={"reason": reason})


def _canonical_user_id(user_id: str, what: str) -> str:
    try:
        if user_id_from_public_key(public_key_from_user_id(user_id)) != user_id:
            raise _refuse("user_id", f"{what} is not a canonical user id")
    except (DecodeError, CryptoError) as exc:
        raise _refuse("user_id", f"{what} is not a valid user id: {exc}") from exc
    return user_id


def _check_name(name: str) -> str:
    problem = label_problem(name, max_bytes=MAX_GROUP_NAME_BYTES, allow_empty=True)
    if problem is not None:
        raise _refuse("name", f"group name {problem}")
    return name


def _check_avatar(avatar_hash: bytes) -> bytes:
    if len(avatar_hash) not in (0, MAX_AVATAR_HASH_SIZE):
        raise _refuse("avatar", "an avatar hash is empty or 32 bytes")
    return avatar_hash


def _permissions(message: GroupPermissions | None) -> Permissions:
    try:
        return Permissions.from_proto(message)
    except ValueError as exc:
        raise _refuse("permissions", "unknown permission level") from exc


def _authenticate(data: bytes) -> tuple[GroupOperation, bytes, bytes]:
    """Decode, verify certificate and signature; returns (operation, its bytes, device key)."""
    try:
        signed = decode_message(SignedGroupOperation, data, max_size=MAX_SIGNED_OPERATION_SIZE)
        operation = decode_message(GroupOperation, signed.operation)
    except DecodeError as exc:
        raise _refuse("malformed", f"malformed group operation: {exc}") from exc
    if operation.version != GROUP_OPERATION_VERSION:
        raise _refuse("version", f"unsupported group operation version {operation.version}")
    _canonical_user_id(operation.author_id, "the author")
    if signed.certificate is None:
        raise _refuse("certificate", "the group operation carries no device certificate")
    try:
        device_key = _certified_device(
            public_key_from_user_id(operation.author_id),
            signed.certificate.certificate,
            signed.certificate.signature,
        )
        verify_signature(device_key, GROUP_OPERATION_CONTEXT + signed.operation, signed.signature)
    except (CryptoError, DecodeError) as exc:
        raise _refuse("signature", f"group operation not signed by its author: {exc}") from exc
    return operation, signed.operation, device_key


@functools.lru_cache(maxsize=4096)
def _certified_device(identity_key: bytes, certificate: bytes, signature: bytes) -> bytes:
    """The device key a certificate vouches for (cached: a log repeats few certificates).

    A pure function of its arguments; failures raise and are not cached.
    """
    signed = SignedDeviceCertificate(certificate=certificate, signature=signature)
    return verify_device_certificate(signed, identity_key=identity_key).device_key


def verify_operation(data: bytes) -> VerifiedOperation:
    """Verify an encoded ``SignedGroupOperation`` and return what it says.

    Checks, in order: size and strict decoding, version, the author's
    certificate for the signing device, the signature over the exact
    operation bytes, then every field (docs/groups.md, "Operations"). Raises
    :class:`~omega.errors.InvalidGroupOperationError` with
    ``details["reason"]``. Says nothing about whether the author may make
    the change: that depends on the group state (:class:`GroupLog`).
    """
    operation, operation_bytes, device_key = _authenticate(data)
    parents = tuple(operation.parents)
    if any(len(parent) != HASH_SIZE for parent in parents) or list(parents) != sorted(set(parents)):
        raise _refuse("parents", "parents must be distinct 32-byte ids in ascending order")
    if len(parents) > MAX_PARENTS:
        raise _refuse("parents", f"more than {MAX_PARENTS} parents")
    if operation.timestamp < 0:
        raise _refuse("timestamp", "negative timestamp")
    common = {
        "op_id": operation_id(operation_bytes),
        "group_id": operation.group_id,
        "parents": parents,
        "author_id": operation.author_id,
        "device_key": device_key,
        "timestamp": operation.timestamp,
        "encoded": bytes(data),
    }
    kind = _kind_of(operation)
    if kind is OperationKind.CREATE:
        assert operation.create is not None
        return _verify_create(operation, operation.create, common)
    if not parents:
        raise _refuse("parents", "only the genesis operation has no parents")
    if len(operation.group_id) != 2 * HASH_SIZE:
        raise _refuse("group_id", "malformed group id")
    return _verify_change(operation, kind, common)


def _verify_create(
    operation: GroupOperation, create: GroupCreate, common: dict[str, object]
) -> VerifiedOperation:
    if operation.parents:
        raise _refuse("parents", "the genesis operation has no parents")
    if len(create.salt) != SALT_SIZE:
        raise _refuse("salt", "the genesis salt is 16 bytes")
    if not hmac.compare_digest(
        operation.group_id.encode("utf-8"),
        derive_group_id(operation.author_id, create.salt).encode("utf-8"),
    ):
        raise _refuse("group_id", "the group id does not derive from its creator and salt")
    if create.max_members < 1:
        raise _refuse("max_members", "a group admits at least one member")
    return VerifiedOperation(
        kind=OperationKind.CREATE,
        name=_check_name(create.name),
        avatar_hash=_check_avatar(create.avatar_hash),
        permissions=_permissions(create.permissions),
        max_members=create.max_members,
        **common,  # type: ignore[arg-type]
    )


def _verify_change(
    operation: GroupOperation, kind: OperationKind, common: dict[str, object]
) -> VerifiedOperation:
    change = getattr(operation, kind.value)
    fields: dict[str, object] = {}
    if kind in (OperationKind.ADD_MEMBER, OperationKind.REMOVE_MEMBER, OperationKind.SET_ROLE):
        fields["target_id"] = _canonical_user_id(change.user_id, "the target")
    if kind is OperationKind.SET_ROLE:
        if int(change.role) not in {int(role) for role in MemberRole}:
            raise _refuse("role", "unknown member role")
        fields["role"] = MemberRole(int(change.role))
    elif kind is OperationKind.RENAME:
        fields["name"] = _check_name(change.name)
    elif kind is OperationKind.SET_AVATAR:
        fields["avatar_hash"] = _check_avatar(change.avatar_hash)
    elif kind is OperationKind.SET_PERMISSIONS:
        fields["permissions"] = _permissions(change.permissions)
    return VerifiedOperation(kind=kind, **fields, **common)  # type: ignore[arg-type]


_FIELD_KINDS = {
    "create": OperationKind.CREATE,
    "add_member": OperationKind.ADD_MEMBER,
    "remove_member": OperationKind.REMOVE_MEMBER,
    "leave": OperationKind.LEAVE,
    "set_role": OperationKind.SET_ROLE,
    "rename": OperationKind.RENAME,
    "set_avatar": OperationKind.SET_AVATAR,
    "set_permissions": OperationKind.SET_PERMISSIONS,
}


def _kind_of(operation: GroupOperation) -> OperationKind:
    # Not betterproto2.which_one_of: its parser keeps every member of a oneof
    # seen on the wire; an operation naming several changes is refused.
    kinds = [kind for name, kind in _FIELD_KINDS.items() if getattr(operation, name) is not None]
    if len(kinds) != 1:
        raise _refuse("change", "a group operation makes exactly one change")
    return kinds[0]
