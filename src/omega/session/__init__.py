"""Sans-I/O messaging engines: envelopes, content rules, delivery policy, session recovery.

Nothing here performs I/O or reads a clock: times are ``int`` Unix
milliseconds passed in, randomness comes from an injected
:data:`~omega.crypto.random.RandomSource`. The client (``omega.client``) and
the simulator (``omega.sim``) drive the same code.

* :mod:`omega.session.envelope`: ``Message`` envelopes and their binding to the content.
* :mod:`omega.session.content`: ``MessageContent`` checks and descriptions.
* :mod:`omega.session.delivery`: the outbox state machine and retry policy.
* :mod:`omega.session.reset`: signed session reset requests.
* :mod:`omega.session.sessions`: which of a device's ratchet sessions to use.
"""

from __future__ import annotations

from omega.session.content import (
    CONTENT_KINDS,
    EPHEMERAL_KINDS,
    MAX_CONTENT_SIZE,
    content_kind,
    decode_content,
    encode_content,
    searchable_text,
)
from omega.session.delivery import TRANSITIONS, DeliveryConfig, DeliveryEngine, Outcome, Path
from omega.session.envelope import (
    MAX_CIPHERTEXT_SIZE,
    EnvelopeInfo,
    bind_content,
    check_binding,
    seal_envelope,
    verify_envelope,
)
from omega.session.reset import (
    ResetGuard,
    VerifiedResetRequest,
    sign_reset_request,
    verify_reset_request,
)

__all__ = [
    "CONTENT_KINDS",
    "EPHEMERAL_KINDS",
    "MAX_CIPHERTEXT_SIZE",
    "MAX_CONTENT_SIZE",
    "TRANSITIONS",
    "DeliveryConfig",
    "DeliveryEngine",
    "EnvelopeInfo",
    "Outcome",
    "Path",
    "ResetGuard",
    "VerifiedResetRequest",
    "bind_content",
    "check_binding",
    "content_kind",
    "decode_content",
    "encode_content",
    "searchable_text",
    "seal_envelope",
    "sign_reset_request",
    "verify_envelope",
    "verify_reset_request",
]
