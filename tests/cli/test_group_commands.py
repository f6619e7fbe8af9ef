"""``omega group`` and ``omega chat --group`` on real data directories over loopback TCP."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from cli_helpers import LOOPBACK, background, create, run, user_id_of


def test_create_send_list_and_remove_over_the_network(tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice_uri, bob_uri = create(alice, "Alice"), create(bob, "Bob")
    bob_id = user_id_of(bob_uri)
    run(bob, "contact", "add", alice_uri)
    listener = background(bob, "listen", "--listen", LOOPBACK, "--count", "1")
    address = listener.out.wait_for(r"Listening on (\S+)").group(1)
    run(alice, "contact", "add", bob_uri, "--address", address)

    status, created = run(alice, "group", "create", "Friends", "bob", "--wait", "30")
    assert status == 0, created
    group_id = re.search(r"Created group Friends \(([0-9a-f]{64})\)", created).group(1)  # type: ignore[union-attr]
    listener.out.wait_for(r"you are in Friends \(2 members\)")
    status, sent = run(alice, "group", "send", "friends", "hello group", "--wait", "30")
    assert status == 0, sent
    assert listener.join() == 0
    assert "Alice: hello group" in listener.out.text()

    status, listed = run(bob, "group", "list", "--json")
    [record] = [json.loads(line) for line in listed.splitlines()]
    assert record["group_id"] == group_id
    assert {m["role"] for m in record["members"]} == {"owner", "member"}
    status, history = run(bob, "group", "history", "friends")
    assert status == 0, history
    assert history.strip().endswith("Alice: hello group")
    status, history = run(bob, "group", "history", group_id[:12], "--json", "--limit", "1")
    [message] = [json.loads(line) for line in history.splitlines()]
    assert message["text"] == "hello group"
    assert run(bob, "group", "history", "friends", "--limit", "0")[0] == 1

    status, promoted = run(alice, "group", "promote", group_id[:8], "bob", "--wait", "0")
    assert status == 0, promoted
    assert "Bob is now admin in Friends." in promoted
    status, removed = run(alice, "group", "remove", "Friends", bob_id, "--wait", "0")
    assert "no longer a member" in removed
    status, listed = run(alice, "group", "list")
    assert "Friends" in listed
    assert "(1 members)" in listed
    assert run(alice, "group", "send", "nope", "x")[0] == 1


def test_chat_in_a_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    create(alice, "Alice")
    bob_uri = create(bob, "Bob")
    run(alice, "contact", "add", bob_uri)
    status, created = run(alice, "group", "create", "Team", "bob", "--wait", "0")
    assert status == 0, created
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi team\n/history\n/quit\n"))
    status, text = run(alice, "chat", "--group", "team", "--no-listen")
    assert status == 0, text
    assert "Group Team" in text
    assert "me: hi team" in text
    assert run(alice, "chat", "bob", "--group", "team")[0] == 1


def test_roles_leaving_and_naming_groups(tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    create(alice, "Alice")
    bob_uri = create(bob, "Bob")
    run(alice, "contact", "add", bob_uri)
    assert "No groups yet" in run(alice, "group", "list")[1]
    for name in ("Team", "Team B"):
        status, created = run(alice, "group", "create", name, "bob", "--wait", "0")
        assert status == 0, created
        assert "still queued" in created
    assert (
        "Bob is now admin in Team."
        in run(alice, "group", "promote", "team", "bob", "--wait", "0")[1]
    )
    assert (
        "Bob is now member in Team."
        in run(alice, "group", "demote", "team", "bob", "--wait", "0")[1]
    )
    assert run(alice, "group", "send", "te", "ambiguous")[0] == 1
    assert run(alice, "group", "send", "team", "x", "--wait", "-1")[0] == 1
    status, left = run(alice, "group", "leave", "team b", "--wait", "0")
    assert "You left Team B." in left
    assert "[you are no longer a member]" in run(alice, "group", "list")[1]
