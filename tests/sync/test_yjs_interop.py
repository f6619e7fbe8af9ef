"""Our sync updates are standard Yjs updates: JavaScript Yjs reads them, and we read its.

Needs Node.js and the Yjs module (Debian: ``apt-get install -y nodejs node-yjs``,
module in /usr/share/nodejs). Skipped with the reason when either is missing,
failed instead when ``OMEGA_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest

from omega.crypto import DeviceKeyPair, Identity
from omega.protocol import MessageContent, SyncedMessage, TextContent, encode_message
from omega.sync import CONTACTS, SETTINGS, SyncReplica, history_document

DEBIAN_NODE_PATH = "/usr/share/nodejs"

# Reads {"updates": [base64...], "edit": {...} | null, "since": base64 | null} on stdin,
# applies the updates to a fresh Y.Doc, optionally sets entries (bytes given as
# {"b64": ...}), prints the entries and the update since "since" (or the whole state).
_SCRIPT = r"""
const Y = require('yjs');
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const request = JSON.parse(input);
  const doc = new Y.Doc();
  for (const update of request.updates) Y.applyUpdate(doc, Buffer.from(update, 'base64'));
  const entries = doc.getMap('entries');
  if (request.edit) {
    doc.transact(() => {
      for (const [key, value] of Object.entries(request.edit)) {
        entries.set(key, value && value.b64 !== undefined
          ? new Uint8Array(Buffer.from(value.b64, 'base64')) : value);
      }
    });
  }
  const out = {};
  entries.forEach((value, key) => {
    out[key] = value instanceof Uint8Array ? {b64: Buffer.from(value).toString('base64')} : value;
  });
  const since = request.since ? Buffer.from(request.since, 'base64') : undefined;
  const update = Y.encodeStateAsUpdate(doc, since);
  const encoded = Buffer.from(update).toString('base64');
  process.stdout.write(JSON.stringify({entries: out, update: encoded}));
});
"""


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [p for p in env.get("NODE_PATH", "").split(os.pathsep) if p]
    env["NODE_PATH"] = os.pathsep.join([*paths, DEBIAN_NODE_PATH])
    return env


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with Yjs importable (NODE_PATH includes /usr/share/nodejs)."""
    executable = shutil.which("node") or shutil.which("nodejs")
    reason = None
    if executable is None:
        reason = "Node.js is not installed"
    else:
        probe = subprocess.run(
            [executable, "-e", "require('yjs')"],
            env=_node_env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode != 0:
            reason = f"the yjs module is not importable: {probe.stderr.decode()[-300:]}"
    if reason is not None:
        message = f"{reason}; install it with `apt-get install -y nodejs node-yjs`"
        if os.environ.get("OMEGA_REQUIRE_SERVICES", "") == "1":
            pytest.fail(f"OMEGA_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    assert executable is not None
    return executable


def _run(
    node: str,
    updates: list[bytes],
    edit: dict[str, object] | None = None,
    since: bytes | None = None,
) -> tuple[dict[str, object], bytes]:
    request = {
        "updates": [base64.b64encode(u).decode() for u in updates],
        "edit": edit,
        "since": base64.b64encode(since).decode() if since is not None else None,
    }
    result = subprocess.run(
        [node, "-e", _SCRIPT],
        input=json.dumps(request).encode(),
        env=_node_env(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(result.stdout)
    return answer["entries"], base64.b64decode(answer["update"])


def _as_json(entries: dict[str, object]) -> dict[str, object]:
    return {
        key: {"b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value
        for key, value in entries.items()
    }


BOB = Identity.create(device_name="phone", created_at=1).user_id
PHONE = DeviceKeyPair.generate().public_key
LAPTOP = DeviceKeyPair.generate().public_key


def _message(text: str) -> bytes:
    return encode_message(
        SyncedMessage(
            sender_id=BOB,
            sender_device_key=PHONE,
            timestamp=1_700_000_000_000,
            received_at=1_700_000_000_500,
            content=encode_message(MessageContent(text=TextContent(text=text))),
        )
    )


def test_javascript_yjs_reads_our_updates(node: str) -> None:
    replica = SyncReplica(PHONE)
    first = replica.set(
        CONTACTS,
        {
            f"{BOB}/display_name": "Bob",
            f"{BOB}/verified": True,
            f"{BOB}/added_at": 1_700_000_000_000,
        },
    )
    second = replica.set(CONTACTS, {f"{BOB}/display_name": "Robert"})
    assert first is not None
    assert second is not None
    entries, _ = _run(node, [first, second])
    assert entries == _as_json(replica.entries(CONTACTS))
    history = history_document(BOB)
    replica.set(history, {"m1": _message("hello"), "m2": _message("again")})
    entries, _ = _run(node, [replica.snapshot(history)])
    assert entries == _as_json(replica.entries(history))


def test_we_read_javascript_yjs_updates_and_merge_concurrent_edits(node: str) -> None:
    phone = SyncReplica(PHONE)
    base = phone.set(SETTINGS, {"theme": "dark", "font.size": 12})
    assert base is not None
    # JavaScript edits on top of our state and sends what we lack.
    entries, update = _run(
        node,
        [base],
        edit={"font.size": 14, "notifications": False},
        since=phone.state_vector(SETTINGS),
    )
    phone.set(SETTINGS, {"theme": "light"})  # a concurrent edit here
    changes = phone.apply(SETTINGS, update)
    assert {c.key for c in changes} == {"font.size", "notifications"}
    assert phone.entries(SETTINGS) == {"theme": "light", "font.size": 14, "notifications": False}
    # And a whole document made in JavaScript, history bytes included.
    laptop = SyncReplica(LAPTOP)
    message = _message("from javascript")
    _, whole = _run(node, [], edit={"m9": {"b64": base64.b64encode(message).decode()}})
    [change] = laptop.apply(history_document(BOB), whole)
    assert change.value == message
    assert entries["theme"] == "dark"
