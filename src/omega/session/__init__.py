"""Sans-I/O messaging engines: envelopes, content rules, delivery policy, session recovery.

Nothing here performs I/O or reads a clock: times are ``int`` Unix
milliseconds passed in, randomness comes from an injected
:data:`~omega.crypto.random.RandomSource`. The client (``omega.client``) and
the simulator (``omega.sim``) drive the same code.

* :mod:`omega.session.envelope`: signed ``Message`` envelopes.
* :mod:`omega.session.content`: ``MessageContent`` checks and descriptions.
* :mod:`omega.session.delivery`: the outbox state machine and retry policy.
* :mod:`omega.session.reset`: signed session reset requests.
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
    seal_envelope,
    signature_input,
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
    "content_kind",
    "decode_content",
    "encode_content",
    "searchable_text",
    "seal_envelope",
    "signature_input",
    "sign_reset_request",
    "verify_envelope",
    "verify_reset_request",
]
