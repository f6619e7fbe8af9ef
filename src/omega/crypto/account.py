"""The :class:`Identity` aggregate: everything one device holds about its user.

An :class:`Identity` bundles the user's identity key pair, the key pair and
certificate of *this* device, and the current verified device list. It is a
value: :meth:`Identity.add_device` and :meth:`Identity.revoke_device` return a
new :class:`Identity` whose device list is re-signed with the next sequence
number, and never perform I/O. Publishing the new list
(``identity.device_list.to_signed()``) is the caller's business.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from omega.crypto._text import label_problem
from omega.crypto.devices import (
    DeviceCertificateInfo,
    DeviceKeyPair,
    VerifiedDeviceList,
    certify_device,
    sign_device_list,
    verify_device_certificate,
    verify_device_list,
)
from omega.crypto.identity import IdentityKeyPair
from omega.crypto.random import RandomSource, system_random
from omega.errors import ConfigurationError
from omega.protocol import DeviceRevocation, SignedDeviceCertificate

__all__ = ["MAX_DISPLAY_NAME_BYTES", "Identity", "LocalDevice"]

MAX_DISPLAY_NAME_BYTES = 64
"""Longest display name of a user, in UTF-8 bytes (may be empty)."""


@dataclass(frozen=True, slots=True)
class LocalDevice:
    """A device whose secret key we hold, with its verified certificate."""

    key_pair: DeviceKeyPair
    """The device's key pair."""
    certificate: DeviceCertificateInfo
    """The identity's certificate for this device."""

    def __post_init__(self) -> None:
        if not hmac.compare_digest(self.key_pair.public_key, self.certificate.device_key):
            raise ConfigurationError("the certificate is for another device key")

    @property
    def device_key(self) -> bytes:
        """The device's 32-byte Ed25519 public key."""
        return self.key_pair.public_key

    @property
    def device_id(self) -> str:
        """Short display id of the device."""
        return self.certificate.device_id


def _identity_fields_problem(display_name: str, created_at: int) -> str | None:
    """Return why a display name or identity creation time is invalid, or ``None``."""
    problem = label_problem(display_name, max_bytes=MAX_DISPLAY_NAME_BYTES, allow_empty=True)
    if problem is not None:
        return f"display name {problem}"
    if not isinstance(created_at, int) or not 0 <= created_at < 1 << 63:
        return f"created_at must be Unix milliseconds in 0..2**63-1, got {created_at!r}"
    return None


@dataclass(frozen=True, slots=True)
class Identity:
    """A user's identity as one of its devices holds it.

    Construction checks that the pieces belong together (raising
    :class:`~omega.errors.ConfigurationError` otherwise): the certificate and
    the device list are the identity's, and this device is in the list.
    """

    key_pair: IdentityKeyPair
    """The user's identity key pair."""
    device: LocalDevice
    """This device."""
    device_list: VerifiedDeviceList
    """The current device list, as last signed."""
    display_name: str = ""
    """The name the user chose for themself (may be empty)."""
    created_at: int = 0
    """When the identity was created, Unix milliseconds."""

    def __post_init__(self) -> None:
        identity_key = self.key_pair.public_key
        if not hmac.compare_digest(self.device.certificate.identity_key, identity_key):
            raise ConfigurationError("the device certificate belongs to another identity")
        if not hmac.compare_digest(self.device_list.identity_key, identity_key):
            raise ConfigurationError("the device list belongs to another identity")
        if not self.device_list.is_active(self.device.device_key):
            raise ConfigurationError("this device is not in the device list")
        problem = _identity_fields_problem(self.display_name, self.created_at)
        if problem is not None:
            raise ConfigurationError(problem)

    @classmethod
    def create(
        cls,
        *,
        device_name: str,
        created_at: int,
        display_name: str = "",
        rng: RandomSource = system_random,
    ) -> Identity:
        """Create a new identity with one device and its first device list (sequence 1)."""
        key_pair = IdentityKeyPair.generate(rng)
        device_key_pair = DeviceKeyPair.generate(rng)
        certificate = certify_device(
            key_pair, device_key_pair.public_key, name=device_name, created_at=created_at
        )
        signed_list = sign_device_list(
            key_pair, sequence=1, devices=[certificate], revocations=[], issued_at=created_at
        )
        return cls(
            key_pair=key_pair,
            device=LocalDevice(
                key_pair=device_key_pair,
                certificate=verify_device_certificate(
                    certificate, identity_key=key_pair.public_key
                ),
            ),
            device_list=verify_device_list(signed_list, user_id=key_pair.user_id),
            display_name=display_name,
            created_at=created_at,
        )

    @property
    def user_id(self) -> str:
        """The user id of this identity."""
        return self.device_list.user_id

    @property
    def identity_key(self) -> bytes:
        """The 32-byte Ed25519 public identity key."""
        return self.key_pair.public_key

    def add_device(self, device_key: bytes, *, name: str, created_at: int) -> Identity:
        """Certify ``device_key`` and return the identity with a new list that includes it.

        ``created_at`` is both the certificate's creation time and the new
        list's issue time. Raises :class:`~omega.errors.ConfigurationError`
        when the device is already listed or was revoked, plus the errors of
        :func:`~omega.crypto.devices.certify_device`.
        """
        if self.device_list.is_active(device_key):
            raise ConfigurationError("the device is already in the device list")
        if self.device_list.is_revoked(device_key):
            raise ConfigurationError("the device was revoked and cannot be added again")
        certificate = certify_device(self.key_pair, device_key, name=name, created_at=created_at)
        devices = [info.to_signed() for info in self.device_list.devices]
        return self._publish([*devices, certificate], self._revocations(), issued_at=created_at)

    def revoke_device(self, device_key: bytes, *, revoked_at: int, reason: str = "") -> Identity:
        """Return the identity with a new list that drops ``device_key`` and revokes it.

        ``revoked_at`` is both the revocation time and the new list's issue
        time. A revoked device can never be listed again. Raises
        :class:`~omega.errors.ConfigurationError` for this device itself (a
        device is revoked from another one) and for a device not in the list.
        """
        if hmac.compare_digest(device_key, self.device.device_key):
            raise ConfigurationError("a device cannot revoke itself")
        if not self.device_list.is_active(device_key):
            raise ConfigurationError("the device is not in the device list")
        devices = [
            info.to_signed()
            for info in self.device_list.devices
            if not hmac.compare_digest(info.device_key, device_key)
        ]
        revocation = DeviceRevocation(device_key=device_key, revoked_at=revoked_at, reason=reason)
        return self._publish(devices, [*self._revocations(), revocation], issued_at=revoked_at)

    def _revocations(self) -> list[DeviceRevocation]:
        return [
            DeviceRevocation(
                device_key=entry.device_key, revoked_at=entry.revoked_at, reason=entry.reason
            )
            for entry in self.device_list.revocations
        ]

    def _publish(
        self,
        devices: Iterable[SignedDeviceCertificate],
        revocations: Iterable[DeviceRevocation],
        *,
        issued_at: int,
    ) -> Identity:
        signed_list = sign_device_list(
            self.key_pair,
            sequence=self.device_list.sequence + 1,
            devices=devices,
            revocations=revocations,
            issued_at=issued_at,
        )
        device_list = verify_device_list(
            signed_list, user_id=self.user_id, previous=self.device_list
        )
        return dataclasses.replace(self, device_list=device_list)
