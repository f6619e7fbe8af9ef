"""Contact URIs: ``omega://<user id>[?name=<display name>]``.

Format
------
* Scheme ``omega``, then ``//``, then the user id (see
  :mod:`omega.crypto.identity`), then optionally ``?`` and a query.
* Query parameters are ``key=value`` pairs separated by ``&``. The only one
  defined is ``name``, the contact's display name: UTF-8, percent-encoded,
  1..64 bytes once decoded, without control, line-separator or
  bidirectional-formatting characters. ``+`` in a value stands for a space
  (HTML form encoding, which many QR generators use); ``name`` may appear at
  most once; an empty ``name`` is the same as none. Parameters with other
  keys are ignored, unparsed, so that later versions can add them.
* No path (not even a trailing ``/``), no fragment, no user info or port.
* Parsing strips surrounding whitespace, accepts the scheme in any case and
  an all-uppercase user id (QR codes in alphanumeric mode carry uppercase),
  and refuses anything longer than 2048 characters.
* The canonical form, produced by ``str(uri)``, is ``omega://`` + the
  lowercase user id, then ``?name=`` + the name with every byte outside
  ``A-Z a-z 0-9 - . _ ~`` percent-encoded with uppercase hex digits (spaces
  as ``%20``), when there is a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from omega.crypto._text import label_problem
from omega.crypto.identity import public_key_from_user_id, user_id_from_public_key
from omega.errors import ConfigurationError, InvalidUriError, InvalidUserIdError

__all__ = ["CONTACT_URI_SCHEME", "MAX_CONTACT_NAME_BYTES", "MAX_URI_LENGTH", "ContactUri"]

CONTACT_URI_SCHEME = "omega"
"""The URI scheme of contact links."""

MAX_URI_LENGTH = 2048
"""Longest contact URI accepted, in characters (after stripping whitespace)."""

MAX_CONTACT_NAME_BYTES = 64
"""Longest display name in a contact URI, in UTF-8 bytes."""

_PREFIX = CONTACT_URI_SCHEME + "://"
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _percent_decode(value: str) -> str:
    """Decode a form-encoded query value strictly: every ``%`` starts a ``%XX`` escape."""
    raw = bytearray()
    position = 0
    while position < len(value):
        char = value[position]
        if char == "%":
            match = _PERCENT_ESCAPE.match(value, position)
            if match is None:
                raise InvalidUriError(f"bad percent-encoding at position {position} of the name")
            raw.append(int(match.group(1), 16))
            position += 3
            continue
        raw += b" " if char == "+" else char.encode("utf-8", "surrogatepass")
        position += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUriError("bad percent-encoding: the name is not valid UTF-8") from exc


def _name_problem(name: str) -> str | None:
    return label_problem(name, max_bytes=MAX_CONTACT_NAME_BYTES, allow_empty=False)


@dataclass(frozen=True, slots=True)
class ContactUri:
    """A parsed ``omega://`` contact URI.

    Construction normalises ``user_id`` to lowercase and raises
    :class:`~omega.errors.ConfigurationError` for an invalid user id or
    display name; :meth:`parse` reads untrusted text.
    """

    user_id: str
    """The contact's canonical user id."""
    display_name: str | None = None
    """The name the contact suggests for themself, if any."""

    def __post_init__(self) -> None:
        try:
            public_key = public_key_from_user_id(self.user_id)
        except InvalidUserIdError as exc:
            raise ConfigurationError(exc.message) from exc
        object.__setattr__(self, "user_id", user_id_from_public_key(public_key))
        if self.display_name is not None:
            problem = _name_problem(self.display_name)
            if problem is not None:
                raise ConfigurationError(f"display name {problem}")

    @property
    def identity_key(self) -> bytes:
        """The contact's 32-byte Ed25519 identity key."""
        return public_key_from_user_id(self.user_id)

    @classmethod
    def parse(cls, text: str) -> ContactUri:
        """Parse a contact URI from untrusted text (see the module docstring).

        Raises :class:`~omega.errors.InvalidUriError` saying what is wrong.
        """
        text = text.strip()
        if len(text) > MAX_URI_LENGTH:
            raise InvalidUriError(
                f"contact URI is {len(text)} characters long, the maximum is {MAX_URI_LENGTH}"
            )
        head = text[: len(_PREFIX)]
        if not head.isascii() or head.lower() != _PREFIX:
            raise InvalidUriError(f"not a contact URI: it must start with {_PREFIX!r}")
        rest = text[len(_PREFIX) :]
        if "#" in rest:
            raise InvalidUriError("a contact URI has no fragment ('#...')")
        authority, has_query, query = rest.partition("?")
        if "/" in authority:
            raise InvalidUriError("a contact URI has no path ('/...') after the user id")
        if not authority:
            raise InvalidUriError("contact URI is missing the user id")
        try:
            public_key = public_key_from_user_id(authority)
        except InvalidUserIdError as exc:
            raise InvalidUriError(f"contact URI holds an {exc.message}") from exc
        name: str | None = None
        seen_name = False
        for parameter in query.split("&") if has_query else ():
            key, _, value = parameter.partition("=")
            if key != "name":
                continue  # unknown parameters are for later versions
            if seen_name:
                raise InvalidUriError("contact URI repeats the 'name' parameter")
            seen_name = True
            decoded = _percent_decode(value)
            if decoded:
                problem = _name_problem(decoded)
                if problem is not None:
                    raise InvalidUriError(f"contact URI's name {problem}")
                name = decoded
        return cls(user_id=user_id_from_public_key(public_key), display_name=name)

    def __str__(self) -> str:
        """The canonical form of the URI."""
        if self.display_name is None:
            return _PREFIX + self.user_id
        return f"{_PREFIX}{self.user_id}?name={quote(self.display_name, safe='')}"
