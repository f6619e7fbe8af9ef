"""Resolvers without a network: a static table, and a chain of resolvers.

:class:`StaticResolver` answers from a table of signed records given as a
dict or read from a JSON or TOML file (tests, closed deployments, the
in-process demo); it is also a :class:`~omega.discovery.base.Publisher`
that stores into itself. :class:`ChainResolver` asks several resolvers in
turn (e.g. a static table of company peers, then the DHT).

The file format (docs/discovery.md, "Static tables"): a JSON object or TOML
document with ``version = 1`` and a ``users`` table keyed by user id, each
entry holding ``device_list`` (standard Base64 of an encoded
``SignedDeviceList``, optional) and ``peer_records`` (a list of standard
Base64 encoded ``SignedPeerRecord``, optional)::

    {"version": 1, "users": {"omega1...": {"device_list": "CgQ...",
                                            "peer_records": ["Cn0..."]}}}
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from omega.crypto import VerifiedDeviceList, check_public_key, verify_device_list
from omega.crypto.devices import MAX_DEVICE_LIST_SIZE
from omega.crypto.identity import public_key_from_user_id
from omega.discovery.base import PeerRecordInfo, Publisher, Resolver, WallClock, unix_ms
from omega.discovery.records import MAX_PEER_RECORD_SIZE, verify_peer_record
from omega.errors import (
    ConfigurationError,
    CryptoError,
    DecodeError,
    ExpiredRecordError,
    LocalProtocolError,
    StaleRecordError,
    TransportError,
)
from omega.protocol import (
    DeviceList,
    SignedDeviceList,
    SignedPeerRecord,
    decode_message,
    encode_message,
)
from omega.transport.clock import Clock

__all__ = ["MAX_STATIC_FILE_SIZE", "ChainResolver", "StaticResolver", "StaticTable"]

logger = logging.getLogger(__name__)

MAX_STATIC_FILE_SIZE = 16 * 1024 * 1024
"""Largest static table file read, in bytes."""

StaticTable = Mapping[str, tuple[SignedDeviceList | None, Iterable[SignedPeerRecord]]]
"""What :class:`StaticResolver` is built from: user id -> (device list, peer records)."""

_FILE_VERSION = 1


class StaticResolver(Resolver, Publisher):
    """Answers from a table of signed records; publishing stores into the table.

    Records are verified when they enter (a record that does not verify
    raises :class:`~omega.errors.ConfigurationError` naming it, an expired one
    is kept) and again, with the clock's current time, when they are
    resolved. ``clock`` reads Unix seconds (:class:`~omega.discovery.base.WallClock`
    by default).
    """

    def __init__(self, table: StaticTable | None = None, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else WallClock()
        self._lists: dict[str, VerifiedDeviceList] = {}
        self._peers: dict[bytes, PeerRecordInfo] = {}
        self._closed = False
        for user_id, (signed_list, records) in (table or {}).items():
            try:
                if signed_list is not None:
                    self._put_device_list(signed_list, user_id=user_id)
                for record in records:
                    self._put_peer_record(record, user_id=user_id, keep_expired=True)
            except (CryptoError, DecodeError) as exc:
                raise ConfigurationError(
                    f"static table entry for {user_id} is invalid: {exc}",
                    details={"user_id": user_id},
                ) from exc

    @classmethod
    def from_file(cls, path: str | Path, *, clock: Clock | None = None) -> StaticResolver:
        """Read a static table from a JSON (``.json``) or TOML (any other suffix) file.

        Raises :class:`~omega.errors.ConfigurationError` for a file that is
        unreadable, too large, malformed, or holds a record that does not verify.
        """
        path = Path(path)
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_STATIC_FILE_SIZE + 1)
        except OSError as exc:
            raise ConfigurationError(f"cannot read static table {path}: {exc}") from exc
        if len(raw) > MAX_STATIC_FILE_SIZE:
            raise ConfigurationError(f"static table {path} exceeds {MAX_STATIC_FILE_SIZE} bytes")
        try:
            text = raw.decode("utf-8")
            document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ConfigurationError(f"static table {path} does not parse: {exc}") from exc
        return cls(_table_from_document(document, str(path)), clock=clock)

    def to_document(self) -> dict[str, object]:
        """The table in the file format (a JSON-ready dict), expired records included."""
        users: dict[str, dict[str, object]] = {}
        for user_id, verified in self._lists.items():
            users.setdefault(user_id, {})["device_list"] = _b64(
                encode_message(verified.to_signed())
            )
        for info in self._peers.values():
            entry = users.setdefault(info.user_id, {})
            records = entry.setdefault("peer_records", [])
            if isinstance(records, list):
                records.append(_b64(encode_message(_signed_of(info))))
        return {"version": _FILE_VERSION, "users": users}

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError("the resolver is closed")

    def _put_device_list(self, signed: SignedDeviceList, *, user_id: str | None = None) -> None:
        if user_id is None:
            user_id = _claimed_user_id(signed)
        canonical = user_id.lower()
        held = self._lists.get(canonical)
        if held is not None and hmac.compare_digest(held.device_list_bytes, signed.device_list):
            return  # the same list again: nothing to do
        self._lists[canonical] = verify_device_list(signed, user_id=user_id, previous=held)

    def _put_peer_record(
        self, signed: SignedPeerRecord, *, user_id: str | None = None, keep_expired: bool = False
    ) -> None:
        now = unix_ms(self._clock)
        try:
            info = verify_peer_record(signed, now=now, user_id=user_id)
        except ExpiredRecordError:
            if not keep_expired:
                raise
            # Checked again at resolve time; a table may be read before it is used.
            info = verify_peer_record(signed, now=-1, user_id=user_id)
        held = self._peers.get(info.device_key)
        if held is not None:
            if _signed_of(held).peer_record == _signed_of(info).peer_record:
                return
            if info.sequence <= held.sequence:
                raise StaleRecordError(
                    f"peer record sequence {info.sequence} of device {info.device_id} is not "
                    f"newer than the held sequence {held.sequence}",
                    details={"sequence": info.sequence, "held": held.sequence},
                )
        self._peers[info.device_key] = info

    async def publish_device_list(self, signed: SignedDeviceList) -> None:
        """Store a signed device list; raises what :func:`~omega.crypto.verify_device_list` does."""
        self._check_open()
        self._put_device_list(signed)

    async def publish_peer_record(self, signed: SignedPeerRecord) -> None:
        """Store a signed peer record; raises for an invalid, expired or older one."""
        self._check_open()
        self._put_peer_record(signed)

    async def resolve_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """The stored device list of ``user_id``, or ``None``."""
        self._check_open()
        public_key_from_user_id(user_id)
        return self._lists.get(user_id.lower())

    async def resolve_peer(self, device_key: bytes, *, user_id: str) -> PeerRecordInfo | None:
        """The stored peer record of ``device_key`` if it is ``user_id``'s and unexpired."""
        self._check_open()
        public_key_from_user_id(user_id)
        check_public_key(device_key)
        info = self._peers.get(device_key)
        if info is None or info.user_id != user_id.lower():
            return None
        if info.expires_at <= unix_ms(self._clock):
            logger.debug("discovery.static expired device=%s", info.device_id)
            return None
        return info

    async def aclose(self) -> None:
        """Close the resolver: every later call raises :class:`~omega.errors.LocalProtocolError`."""
        self._closed = True


def _signed_of(info: PeerRecordInfo) -> SignedPeerRecord:
    if info.signed is None:
        raise AssertionError("a verified peer record keeps its signed form")
    return info.signed


def _claimed_user_id(signed: SignedDeviceList) -> str:
    return decode_message(DeviceList, signed.device_list, max_size=MAX_DEVICE_LIST_SIZE).user_id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, where: str, max_size: int) -> bytes:
    if not isinstance(value, str) or len(value) > (max_size * 4) // 3 + 4:
        raise ConfigurationError(f"{where} must be a Base64 string of at most {max_size} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ConfigurationError(f"{where} is not valid Base64: {exc}") from exc


def _table_from_document(document: object, source: str) -> StaticTable:
    if not isinstance(document, dict) or document.get("version") != _FILE_VERSION:
        raise ConfigurationError(f"static table {source} must hold version = {_FILE_VERSION}")
    users = document.get("users", {})
    if not isinstance(users, dict):
        raise ConfigurationError(f"static table {source}: users must be a table")
    table: dict[str, tuple[SignedDeviceList | None, list[SignedPeerRecord]]] = {}
    for user_id, entry in users.items():
        where = f"static table {source}, user {user_id}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: the entry must be a table")
        try:
            signed_list = None
            if "device_list" in entry:
                raw = _unb64(entry["device_list"], f"{where}: device_list", MAX_DEVICE_LIST_SIZE)
                signed_list = decode_message(SignedDeviceList, raw, max_size=MAX_DEVICE_LIST_SIZE)
            records = entry.get("peer_records", [])
            if not isinstance(records, list):
                raise ConfigurationError(f"{where}: peer_records must be a list")
            peer_records = [
                decode_message(
                    SignedPeerRecord,
                    _unb64(item, f"{where}: peer_records", MAX_PEER_RECORD_SIZE),
                    max_size=MAX_PEER_RECORD_SIZE,
                )
                for item in records
            ]
        except DecodeError as exc:
            raise ConfigurationError(f"{where}: {exc}") from exc
        table[user_id] = (signed_list, peer_records)
    return table


class ChainResolver(Resolver):
    """Asks each resolver in turn and returns the first answer that is not ``None``.

    A resolver that fails with a :class:`~omega.errors.TransportError` is
    logged and skipped.
    Closing the chain closes every resolver in it.
    """

    def __init__(self, resolvers: Sequence[Resolver]) -> None:
        if not resolvers:
            raise ConfigurationError("a ChainResolver needs at least one resolver")
        self._resolvers = tuple(resolvers)
        self._closed = False

    @property
    def resolvers(self) -> tuple[Resolver, ...]:
        """The resolvers, in the order they are asked."""
        return self._resolvers

    async def resolve_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """The first device list any resolver finds for ``user_id``."""
        if self._closed:
            raise LocalProtocolError("the resolver is closed")
        public_key_from_user_id(user_id)
        for resolver in self._resolvers:
            try:
                found = await resolver.resolve_device_list(user_id)
            except TransportError as exc:
                logger.warning(
                    "discovery.chain resolver=%s failed=%s", type(resolver).__name__, exc.code
                )
                continue
            if found is not None:
                return found
        return None

    async def resolve_peer(self, device_key: bytes, *, user_id: str) -> PeerRecordInfo | None:
        """The first peer record any resolver finds for ``device_key`` of ``user_id``."""
        if self._closed:
            raise LocalProtocolError("the resolver is closed")
        public_key_from_user_id(user_id)
        check_public_key(device_key)
        for resolver in self._resolvers:
            try:
                found = await resolver.resolve_peer(device_key, user_id=user_id)
            except TransportError as exc:
                logger.warning(
                    "discovery.chain resolver=%s failed=%s", type(resolver).__name__, exc.code
                )
                continue
            if found is not None:
                return found
        return None

    async def aclose(self) -> None:
        """Close every resolver of the chain."""
        self._closed = True
        for resolver in self._resolvers:
            await resolver.aclose()
