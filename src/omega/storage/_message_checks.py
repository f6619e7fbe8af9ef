"""Argument checks shared by the message store records and backends.

Every check returns its argument when it is valid and raises
:class:`~omega.errors.ConfigurationError` naming the field otherwise.
"""

from __future__ import annotations

import functools
import hmac

from omega.crypto import MAX_DEVICE_LIST_SIZE, MAX_DISPLAY_NAME_BYTES, public_key_from_user_id
from omega.crypto._text import label_problem
from omega.errors import ConfigurationError, InvalidUserIdError
from omega.storage.base import check_device_key, check_message_id

__all__ = [
    "MAX_CONTENT_SIZE",
    "MAX_CONVERSATION_ID_LENGTH",
    "MAX_TEXT_BYTES",
    "check_bool",
    "check_content",
    "check_conversation_id",
    "check_device_list",
    "check_display_name",
    "check_identity_key",
    "check_instance",
    "check_optional_device_key",
    "check_optional_time",
    "check_stored_message_id",
    "check_time",
    "check_user_id",
    "check_text",
]

MAX_CONTENT_SIZE = 256 * 1024
"""Largest encoded message content (or outbox ciphertext) a message store accepts, in bytes."""

MAX_TEXT_BYTES = 256 * 1024
"""Largest searchable text of one message, in UTF-8 bytes."""

MAX_CONVERSATION_ID_LENGTH = 256
"""Longest conversation id, in characters (a user id is 64)."""

_MAX_TIME = (1 << 63) - 1


def _encodable(text: str, what: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} contains a lone surrogate (not valid Unicode)") from None
    return text


def check_instance(value: object, kind: type) -> None:
    """Raise ConfigurationError unless ``value`` is a ``kind``."""
    if not isinstance(value, kind):
        raise ConfigurationError(f"expected a {kind.__name__}, not {type(value).__name__}")


def check_bool(value: object, what: str) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def check_time(value: object, what: str) -> int:
    """Return ``value`` if it is Unix milliseconds: an int in 0..2**63-1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TIME:
        raise ConfigurationError(f"{what} must be Unix milliseconds, an int in 0..2**63-1")
    return value


def check_optional_time(value: object, what: str) -> int | None:
    """Return ``value`` if it is ``None`` or valid for :func:`check_time`."""
    return None if value is None else check_time(value, what)


def check_stored_message_id(message_id: object) -> str:
    """A message id: 1..256 characters of valid Unicode."""
    return _encodable(check_message_id(message_id), "a message id")


def check_conversation_id(conversation_id: object) -> str:
    """A conversation id: 1..256 characters of valid Unicode (a user id or a group id)."""
    if (
        not isinstance(conversation_id, str)
        or not 0 < len(conversation_id) <= MAX_CONVERSATION_ID_LENGTH
    ):
        raise ConfigurationError(f"a conversation id is 1..{MAX_CONVERSATION_ID_LENGTH} characters")
    return _encodable(conversation_id, "a conversation id")


@functools.lru_cache(maxsize=4096)
def _user_key(user_id: str) -> bytes:
    """The identity key of a canonical user id (valid ids are cached: decoding is costly)."""
    try:
        key = public_key_from_user_id(user_id)
    except InvalidUserIdError as exc:
        raise ConfigurationError(exc.message) from exc
    if user_id != user_id.lower():
        raise ConfigurationError("a user id must be in its canonical lowercase form")
    return key


def check_user_id(user_id: object, what: str = "user_id") -> str:
    """A canonical (lowercase) ``omega1...`` user id with a valid checksum and key."""
    if not isinstance(user_id, str):
        raise ConfigurationError(f"{what} must be a user id string")
    try:
        _user_key(user_id)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{what}: {exc.message}") from exc
    return user_id


def check_identity_key(user_id: str, identity_key: object) -> bytes:
    """Return ``identity_key`` if it is the 32-byte key that ``user_id`` encodes."""
    if not isinstance(identity_key, bytes) or len(identity_key) != 32:
        raise ConfigurationError("identity_key is 32 bytes")
    if not hmac.compare_digest(_user_key(user_id), identity_key):
        raise ConfigurationError("identity_key does not match user_id")
    return identity_key


def check_content(value: object, what: str) -> bytes:
    """Return ``value`` if it is bytes of at most MAX_CONTENT_SIZE."""
    if not isinstance(value, bytes):
        raise ConfigurationError(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) > MAX_CONTENT_SIZE:
        raise ConfigurationError(f"{what} of {len(value)} bytes exceeds {MAX_CONTENT_SIZE} bytes")
    return value


def check_text(text: object) -> str:
    """Return ``text`` if it is valid Unicode of at most MAX_TEXT_BYTES in UTF-8."""
    if not isinstance(text, str):
        raise ConfigurationError(f"text must be a str, not {type(text).__name__}")
    if len(_encodable(text, "text").encode("utf-8")) > MAX_TEXT_BYTES:
        raise ConfigurationError(f"text exceeds {MAX_TEXT_BYTES} UTF-8 bytes")
    return text


def check_display_name(display_name: object) -> str:
    """A display name: a label of at most MAX_DISPLAY_NAME_BYTES (no control characters)."""
    if not isinstance(display_name, str):
        raise ConfigurationError("display_name must be a str")
    problem = label_problem(display_name, max_bytes=MAX_DISPLAY_NAME_BYTES, allow_empty=True)
    if problem is not None:
        raise ConfigurationError(f"display_name {problem}")
    return display_name


def check_device_list(device_list: object) -> bytes | None:
    """``None`` or bytes of at most MAX_DEVICE_LIST_SIZE (an encoded SignedDeviceList)."""
    if device_list is None:
        return None
    if not isinstance(device_list, bytes) or len(device_list) > MAX_DEVICE_LIST_SIZE:
        raise ConfigurationError(f"device_list is None or at most {MAX_DEVICE_LIST_SIZE} bytes")
    return device_list


def check_optional_device_key(value: object, what: str) -> bytes | None:
    """``None`` or a 32-byte key."""
    if value is None:
        return None
    try:
        return check_device_key(value)
    except ConfigurationError:
        raise ConfigurationError(f"{what} is None or 32 bytes") from None
