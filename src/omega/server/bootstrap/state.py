"""The bootstrap node's persistent routing table: our own JSON format, never pickle.

kademlia's ``Server.save_state``/``load_state`` pickle the node's state, and
unpickling a file runs whatever code it names; a bootstrap node keeps its
state in this format instead (docs/discovery.md, "Bootstrap node")::

    {
      "version": 1,
      "node_id": "<40 lowercase hex digits>",
      "saved_at": <Unix milliseconds>,
      "contacts": [{"id": "<40 hex>", "host": "<IPv4 or IPv6 literal>", "port": <1..65535>}]
    }

The file is written to a temporary name, flushed and renamed over the old
one, so a crash never leaves half a file. Reading refuses anything else with
:class:`~omega.errors.CorruptDataError`.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from omega.errors import CorruptDataError

__all__ = ["MAX_CONTACTS", "MAX_STATE_SIZE", "RoutingState", "load_state", "save_state"]

MAX_STATE_SIZE = 4 * 1024 * 1024
"""Largest state file read, in bytes."""

MAX_CONTACTS = 10_000
"""Most contacts a state file may hold."""

_VERSION = 1


@dataclass(frozen=True, slots=True)
class RoutingState:
    """What a bootstrap node remembers across restarts."""

    node_id: bytes
    """Its own 20-byte node id (a stable id keeps its place in everyone's tables)."""
    contacts: tuple[tuple[bytes, str, int], ...]
    """Its routing table: ``(node id, IP, port)``."""
    saved_at: int = 0
    """When the state was saved, Unix milliseconds."""


def _corrupt(path: Path, reason: str) -> CorruptDataError:
    return CorruptDataError(
        f"routing table {path} is unreadable: {reason}", details={"path": str(path)}
    )


def _node_id(value: object, path: Path) -> bytes:
    if not isinstance(value, str) or len(value) != 40:
        raise _corrupt(path, "a node id is 40 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _corrupt(path, "a node id is 40 hex digits") from None


def _contact(entry: object, path: Path) -> tuple[bytes, str, int]:
    if not isinstance(entry, dict) or set(entry) != {"id", "host", "port"}:
        raise _corrupt(path, "a contact is {id, host, port}")
    host, port = entry["host"], entry["port"]
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise _corrupt(path, f"contact host {host!r} is not an IP address") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise _corrupt(path, f"contact port {port!r} is not in 1..65535")
    return _node_id(entry["id"], path), host, port


def load_state(path: Path) -> RoutingState | None:
    """Read the state file; ``None`` when it does not exist yet."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_STATE_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _corrupt(path, str(exc)) from exc
    if len(raw) > MAX_STATE_SIZE:
        raise _corrupt(path, f"larger than {MAX_STATE_SIZE} bytes")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(path, f"not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("version") != _VERSION:
        raise _corrupt(path, f"version must be {_VERSION}")
    contacts = document.get("contacts")
    if not isinstance(contacts, list) or len(contacts) > MAX_CONTACTS:
        raise _corrupt(path, f"contacts must be a list of at most {MAX_CONTACTS}")
    saved_at = document.get("saved_at", 0)
    if isinstance(saved_at, bool) or not isinstance(saved_at, int):
        raise _corrupt(path, "saved_at must be an integer")
    return RoutingState(
        node_id=_node_id(document.get("node_id"), path),
        contacts=tuple(_contact(entry, path) for entry in contacts),
        saved_at=saved_at,
    )


def save_state(path: Path, state: RoutingState) -> None:
    """Write the state file atomically (temporary file, fsync, rename)."""
    document = {
        "version": _VERSION,
        "node_id": state.node_id.hex(),
        "saved_at": state.saved_at,
        "contacts": [
            {"id": node_id.hex(), "host": host, "port": port}
            for node_id, host, port in state.contacts[:MAX_CONTACTS]
        ],
    }
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
