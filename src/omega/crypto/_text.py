"""Rules for the short human-readable labels Omega signs or displays.

Device names, display names and revocation reasons end up on other people's
screens, so they must not carry characters that rewrite the text around
them. A label is valid when it is valid Unicode (no lone surrogates), fits in
its UTF-8 byte budget, and contains none of:

* control characters (Unicode category ``Cc``: C0, DEL and C1);
* line and paragraph separators (U+2028, U+2029);
* bidirectional formatting characters (U+061C, U+200E, U+200F,
  U+202A..U+202E, U+2066..U+2069), which can make a name display as
  something else ("Trojan Source", CVE-2021-42574).

Other format characters such as the zero-width joiner stay allowed, since
emoji sequences need them.
"""

from __future__ import annotations

import unicodedata

__all__ = ["label_problem"]

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)


def label_problem(text: str, *, max_bytes: int, allow_empty: bool) -> str | None:
    """Return why ``text`` is not a valid label, or ``None`` when it is valid."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode"
    if size == 0 and not allow_empty:
        return "must not be empty"
    if size > max_bytes:
        return f"is {size} UTF-8 bytes long, the maximum is {max_bytes}"
    for index, char in enumerate(text):
        if char in _BIDI_CONTROLS or unicodedata.category(char) == "Cc":
            return f"contains the control character U+{ord(char):04X} at position {index}"
    return None
