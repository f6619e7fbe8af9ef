"""``omega init``, ``contact``, ``send``, ``listen`` and ``history`` on real data directories.

Two identities in ``tmp_path``, messages over real TCP on loopback: one side
runs ``omega listen`` in a thread, the other ``omega send``.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import pytest
from cli_helpers import LOOPBACK, background, contact_uri, create, run, user_id_of

from omega.client.datadir import DataDir
from omega.crypto import Identity
from omega.errors import ConfigurationError, CorruptDataError, InvalidAddressError


@pytest.fixture
def alice(tmp_path: Path) -> Path:
    return tmp_path / "alice"


@pytest.fixture
def bob(tmp_path: Path) -> Path:
    return tmp_path / "bob"


def test_init_then_id_and_the_id_new_alias(
    alice: Path, bob: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = create(alice, "Alice")
    assert uri.startswith("omega://omega1")
    assert uri.endswith("?name=Alice")
    status, shown = run(alice, "id", "--no-qr")
    assert status == 0
    assert contact_uri(shown) == uri
    status, shown = run(alice, "id")
    assert "█" in shown  # `omega id` alone is `omega id show`, QR code included

    assert run(alice, "init")[0] == 1
    assert "already exists; pass --force" in capsys.readouterr().err
    assert contact_uri(run(alice, "id", "show", "--no-qr")[1]) == uri

    status, created = run(bob, "id", "new", "--name", "Bob", "--device", "desk")
    assert status == 0
    assert "desk" in created
    assert contact_uri(created).endswith("?name=Bob")


def test_contacts_add_list_verify_block(
    alice: Path, bob: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create(alice, "Alice")
    bob_uri = create(bob, "Bob")
    bob_id = user_id_of(bob_uri)
    status, added = run(alice, "contact", "add", bob_uri, "--address", "/ip4/192.0.2.7/tcp/7447")
    assert status == 0, added
    assert f"Added Bob ({bob_id})" in added
    status, listed = run(alice, "contact", "list")
    assert listed.splitlines() == [f"Bob  {bob_id}", "    /ip4/192.0.2.7/tcp/7447"]

    # A second address comes first, the first one is kept; a new name replaces the old one.
    run(alice, "contact", "add", bob_id, "--name", "Bobby", "--address", "/ip4/192.0.2.8/tcp/1")
    assert DataDir(alice).load_address_book() == {
        bob_id: ["/ip4/192.0.2.8/tcp/1", "/ip4/192.0.2.7/tcp/7447"]
    }
    [record] = [
        json.loads(line) for line in run(alice, "contact", "list", "--json")[1].splitlines()
    ]
    assert record == {
        "user_id": bob_id,
        "name": "Bobby",
        "verified": False,
        "blocked": False,
        "addresses": ["/ip4/192.0.2.8/tcp/1", "/ip4/192.0.2.7/tcp/7447"],
    }

    # Without --yes and without a terminal nothing is marked.
    status, shown = run(alice, "contact", "verify", "bob")
    assert status == 0
    assert "Not marked verified." in shown
    groups = re.findall(r"^    (\d{5} \d{5} \d{5} \d{5})$", shown, re.MULTILINE)
    assert len(groups) == 3
    status, shown = run(alice, "contact", "verify", "BOB", "--yes")
    assert "Bobby is now verified." in shown
    assert run(alice, "contact", "list")[1].splitlines()[0].endswith("[verified]")

    # The QR payload Bob shows, scanned by Alice, matches; a payload from someone else does not.
    alice_uri = contact_uri(run(alice, "id", "--no-qr")[1])
    run(bob, "contact", "add", alice_uri)
    same_groups = re.findall(r"^    ([\d ]+)$", run(bob, "contact", "verify", "alice")[1], re.M)
    assert same_groups == groups
    payload = re.search(r"scan: ([0-9a-f]+)", run(bob, "contact", "verify", "ali")[1])
    assert payload is not None
    status, shown = run(alice, "contact", "verify", bob_id, "--scan", payload.group(1))
    assert status == 0
    assert "The scanned code matches." in shown
    carol_uri = create(alice.parent / "carol", "Carol")
    run(alice.parent / "carol", "contact", "add", bob_uri)
    other = re.search(
        r"scan: ([0-9a-f]+)", run(alice.parent / "carol", "contact", "verify", "b")[1]
    )
    assert other is not None
    assert run(alice, "contact", "verify", "bob", "--scan", other.group(1))[0] == 1
    assert "does not match" in capsys.readouterr().err
    assert run(alice, "contact", "verify", "bob", "--scan", "zz")[0] == 1
    assert "hex" in capsys.readouterr().err

    status, shown = run(alice, "contact", "block", bob_id[:12])
    assert "Blocked Bobby." in shown
    assert run(alice, "contact", "list")[1].splitlines()[0].endswith("[verified, blocked]")
    assert "Unblocked Bobby." in run(alice, "contact", "unblock", "bobby")[1]
    assert "will be delivered" in run(alice, "contact", "accept-devices", "bobby")[1]

    # Names that match nobody, or several people, are refused clearly.
    run(alice, "contact", "add", carol_uri, "--name", "Bobcat")
    assert run(alice, "contact", "block", "zed")[0] == 1
    assert "no contact matches 'zed'" in capsys.readouterr().err
    assert run(alice, "contact", "block", "bob")[0] == 1
    assert "matches several contacts: Bobby" in capsys.readouterr().err
    # Bad input changes nothing.
    before = run(alice, "contact", "list", "--json")[1]
    assert run(alice, "contact", "add", "omega://nonsense")[0] == 1
    assert "not a contact URI or user id" in capsys.readouterr().err
    dave = Identity.create(device_name="x", created_at=1).user_id
    assert run(alice, "contact", "add", dave, "--address", "/ip4/1.2.3/tcp/1")[0] == 1
    assert "address" in capsys.readouterr().err
    elsewhere = f"/ip4/1.2.3.4/tcp/1/omega/{user_id_of(carol_uri)}"
    assert run(alice, "contact", "add", dave, "--address", elsewhere)[0] == 1
    assert "belongs to another user" in capsys.readouterr().err
    assert run(alice, "contact", "list", "--json")[1] == before


def test_verify_asks_in_a_terminal(alice: Path, bob: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create(alice, "Alice")
    run(alice, "contact", "add", create(bob, "Bob"))

    class Terminal:
        def __init__(self, answer: str) -> None:
            self.answer = answer

        def isatty(self) -> bool:
            return True

        def readline(self) -> str:
            return self.answer

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    _, shown = run(alice, "contact", "verify", "bob")
    assert "Do these numbers match theirs exactly? [y/N]" in shown
    assert "Not marked verified." in shown
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert "Bob is now verified." in run(alice, "contact", "verify", "bob")[1]


def test_errors_are_clear(
    alice: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(alice, "contact", "list")[0] == 1
    assert "no identity in" in capsys.readouterr().err
    create(alice, "Alice")
    assert "No contacts yet" in run(alice, "contact", "list")[1]
    monkeypatch.setenv("OMEGA_PASSPHRASE", "not the passphrase")
    assert run(alice, "contact", "list")[0] == 1
    assert "omega: error: wrong passphrase" in capsys.readouterr().err
    monkeypatch.undo()
    (alice / "addresses.json").write_text("{not json")
    assert run(alice, "contact", "list")[0] == 1
    assert "addresses.json is damaged" in capsys.readouterr().err


def test_address_book_is_validated(tmp_path: Path) -> None:
    directory = DataDir(tmp_path)
    assert directory.load_address_book() == {}
    user_id = user_id_of(create(tmp_path / "someone", "S"))
    other_id = user_id_of(create(tmp_path / "other", "O"))
    directory.save_address_book(
        {
            user_id.upper(): [" /ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/1", "/dns/Ex.org/tcp/2"],
            other_id: [],
        }
    )
    path = tmp_path / "addresses.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert directory.load_address_book() == {user_id: ["/ip4/127.0.0.1/tcp/1", "/dns/ex.org/tcp/2"]}
    directory.save_address_book({user_id: [f"/ip4/127.0.0.1/tcp/{p}" for p in range(1, 40)]})
    assert len(directory.load_address_book()[user_id]) == 16
    with pytest.raises(InvalidAddressError):
        directory.save_address_book({user_id: ["/ip4/999.0.0.1/tcp/1"]})
    with pytest.raises(ConfigurationError):
        directory.save_address_book({user_id: "/ip4/127.0.0.1/tcp/1"})  # type: ignore[dict-item]
    assert len(directory.load_address_book()[user_id]) == 16  # unchanged

    for damaged in (
        b"\xff\xfe",
        b"[]",
        b'{"format": "something else", "addresses": {}}',
        b'{"format": "omega-address-book/v1", "addresses": []}',
        b'{"format": "omega-address-book/v1", "addresses": {"omega1x": []}}',
        b'{"format": "omega-address-book/v1", "addresses": {"%s": "x"}}' % user_id.encode(),
        b'{"format": "omega-address-book/v1", "addresses": {"%s": [1]}}' % user_id.encode(),
        b'{"format": "omega-address-book/v1", "addresses": {"%s": [%s]}}'
        % (user_id.encode(), b",".join(b'"/ip4/127.0.0.1/tcp/%d"' % p for p in range(1, 20))),
        b" " * (1024 * 1024 + 1),
    ):
        path.write_bytes(damaged)
        with pytest.raises(CorruptDataError, match=r"addresses\.json is damaged"):
            directory.load_address_book()
        assert path.read_bytes() == damaged  # left for the user to look at


def test_send_to_a_listener_then_history(
    alice: Path, bob: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alice_uri = create(alice, "Alice")
    bob_uri = create(bob, "Bob")
    alice_id = user_id_of(alice_uri)
    run(bob, "contact", "add", alice_uri)
    listener = background(bob, "listen", "--listen", LOOPBACK, "--count", "2")
    address = listener.out.wait_for(r"Listening on (\S+)").group(1)
    assert address.endswith(f"/omega/{user_id_of(bob_uri)}")
    run(alice, "contact", "add", bob_uri, "--address", address)

    status, sent = run(alice, "send", "bob", "Hello Bob, it's Alice", "--wait", "60")
    assert status == 0, sent
    first_id = re.search(r"Queued (\S+) for Bob", sent).group(1)  # type: ignore[union-attr]
    assert f"{first_id} delivered" in sent
    status, sent = run(
        alice, "send", "bob", "a reply to myself", "--reply-to", first_id[:8], "--ttl", "3600"
    )
    assert status == 0, sent
    assert listener.join() == 0
    heard = listener.out.text()
    assert f"{first_id[:8]} Alice: Hello Bob, it's Alice" in heard
    assert f"↪{first_id[:8]} Alice: a reply to myself" in heard

    status, history = run(bob, "history", "alice")
    lines = history.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("Alice: Hello Bob, it's Alice")
    status, history = run(alice, "history", "bob", "--json", "--limit", "1")
    [latest] = [json.loads(line) for line in history.splitlines()]
    assert latest["text"] == "a reply to myself"
    assert latest["reply_to"] == first_id
    assert latest["direction"] == "outgoing"
    assert latest["state"] == "delivered"
    assert latest["content"]["text"]["text"] == "a reply to myself"
    assert latest["expires_at"] is not None

    status, found = run(bob, "history", "search", "hello")
    assert found.splitlines()[0].endswith("Alice: Hello Bob, it's Alice")
    assert len(found.splitlines()) == 1
    assert "Nothing matches" in run(bob, "history", "search", "absent", "--user", "alice")[1]
    export = tmp_path / "export.json"
    status, done = run(bob, "history", "export", alice_id[:12], str(export))
    assert f"Exported 2 message(s) with Alice to {export}" in done
    exported = json.loads(export.read_text())
    assert exported["conversation_id"] == alice_id
    assert [m["text"] for m in exported["messages"]] == [
        "Hello Bob, it's Alice",
        "a reply to myself",
    ]
    assert json.loads(run(bob, "history", "export", "alice", "-")[1]) == exported

    assert run(bob, "history", "alice", "bob")[0] == 1
    assert "usage: omega history" in capsys.readouterr().err
    assert run(bob, "history", "alice", "--limit", "0")[0] == 1


def test_unreachable_message_stays_queued_and_goes_next_time(
    alice: Path, bob: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create(alice, "Alice")
    bob_uri = create(bob, "Bob")
    run(alice, "contact", "add", bob_uri, "--address", "/ip4/127.0.0.1/tcp/1")
    status, sent = run(alice, "send", "bob", "are you there?", "--wait", "0.2")
    assert status == 3
    assert "stays in the outbox and is retried" in sent
    queued = re.search(r"Queued (\S+)", sent).group(1)  # type: ignore[union-attr]
    assert f"{queued} pending" in sent or f"{queued} sent" in sent

    listener = background(bob, "listen", "--listen", LOOPBACK, "--json", "--count", "2")
    ready = json.loads(listener.out.wait_for(r"\{.*\n").group(0))
    assert ready["event"] == "listening"
    run(alice, "contact", "add", bob_uri, "--address", ready["addresses"][0])
    status, sent = run(alice, "send", "bob", "second try", "--no-listen")
    assert status == 0, sent
    assert "1 earlier message(s) to Bob still queued: sending" in sent
    assert "still queued\n" not in sent
    assert listener.join() == 0
    events = [json.loads(line) for line in listener.out.text().splitlines()[1:]]
    texts = [e["message"]["text"] for e in events if e["event"] == "message_received"]
    assert sorted(texts) == ["are you there?", "second try"]

    assert run(alice, "send", "bob", "x", "--wait", "-1")[0] == 1
    assert run(bob, "listen", "--count", "0")[0] == 1
    assert "--count must be at least 1" in capsys.readouterr().err


def test_listen_stops_after_its_timeout(alice: Path) -> None:
    create(alice, "Alice")
    status, output = run(alice, "listen", "--no-listen", "--timeout", "0.1")
    assert status == 0
    assert "Not listening: only outgoing connections." in output
