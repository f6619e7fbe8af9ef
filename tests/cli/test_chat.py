"""``omega chat`` driven through a pipe as its standard input, against a real peer on loopback."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from cli_helpers import LOOPBACK, Background, background, create, run, user_id_of

from omega.cli._chat import PROMPT, Screen, _read_lines


@pytest.fixture
def keyboard(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.TextIOWrapper]:
    """What the test writes here is what ``omega chat`` reads on its standard input."""
    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end, "r", encoding="utf-8")
    typing = os.fdopen(write_end, "w", encoding="utf-8", buffering=1)
    monkeypatch.setattr(sys, "stdin", stdin)
    yield typing
    if not typing.closed:
        typing.close()
    for thread in threading.enumerate():
        if thread.name == "omega-chat-input":
            thread.join(10)
    stdin.close()


def type_line(keyboard: io.TextIOWrapper, line: str) -> None:
    keyboard.write(line + "\n")


def test_chat_sends_receives_and_runs_its_commands(
    tmp_path: Path, keyboard: io.TextIOWrapper
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice_uri, bob_uri = create(alice, "Alice"), create(bob, "Bob")
    bob_listen = background(bob, "listen", "--listen", LOOPBACK, "--json", "--count", "2")
    bob_address = bob_listen.out.wait_for(r'"addresses": \["([^"]+)"').group(1)
    run(alice, "contact", "add", bob_uri, "--address", bob_address)

    chat = background(alice, "chat", "bob", "--listen", LOOPBACK)
    alice_address = chat.out.wait_for(r"listening on (\S+)\.").group(1)
    chat.out.wait_for("Type /help for the commands")
    type_line(keyboard, "hello from the chat")
    mine = chat.out.wait_for(r"(\w{8}) me: hello from the chat").group(1)
    chat.out.wait_for(rf"✓✓ {mine} delivered")
    type_line(keyboard, f"/edit {mine} hello, edited")
    chat.out.wait_for(rf"{mine} me: hello, edited \(edited\)")
    type_line(keyboard, "//slash at the start")
    chat.out.wait_for(r"me: /slash at the start")
    assert bob_listen.join() == 0
    events = [json.loads(line) for line in bob_listen.out.text().splitlines()]
    assert [e["message"]["text"] for e in events if e["event"] == "message_received"] == [
        "hello from the chat",
        "/slash at the start",
    ]
    assert any(e["event"] == "message_edited" for e in events)

    # Bob answers; the chat shows it while running and marks it read.
    run(bob, "contact", "add", alice_uri, "--address", alice_address)
    status, sent = run(bob, "send", "alice", "hi Alice", "--no-listen")
    assert status == 0, sent
    theirs = chat.out.wait_for(r"(\w{8}) Bob: hi Alice").group(1)
    type_line(keyboard, f"/react {theirs} 👍")
    chat.out.wait_for(rf"reacted 👍 to {theirs}")
    type_line(keyboard, f"/reply {theirs} answering you")
    chat.out.wait_for(rf"↪{theirs} me: answering you")
    type_line(keyboard, "/typing")
    chat.out.wait_for("Bob is told you are typing")
    type_line(keyboard, f"/delete {mine}")
    chat.out.wait_for(rf"me deleted {mine} for everyone")
    type_line(keyboard, f"/react {theirs}")
    chat.out.wait_for(rf"removed your reaction to {theirs}")
    for line in (
        "/history 3",
        "/history many",
        "/help",
        "/nonsense",
        "/edit",
        "/edit abc",
        "/reply",
        f"/reply {theirs}",
        f"/edit {mine}",
    ):
        type_line(keyboard, line)
    type_line(keyboard, "/react 0000")
    chat.out.wait_for("error: no message '0000' in this conversation")
    type_line(keyboard, "/quit")
    assert chat.join() == 0
    shown = chat.out.text()
    assert "usage: /history [N], N from 1 to 1000" in shown
    assert "/react ID EMOJI   react to a message" in shown
    assert "unknown command /nonsense: /help lists them" in shown
    assert "usage: /edit ID TEXT" in shown
    assert shown.count("usage: /reply ID TEXT") == 2
    assert "give at least 4 characters of the message id" in shown
    assert shown.rstrip().endswith("Bye.")

    [answer] = [line for line in run(bob, "history", "alice")[1].splitlines() if "hi Alice" in line]
    assert answer.endswith(("[read]", "[delivered]"))
    alice_history = run(alice, "history", "bob", "--json")[1].splitlines()
    by_id = {json.loads(line)["message_id"][:8]: json.loads(line) for line in alice_history}
    assert by_id[theirs]["text"] == "hi Alice"
    assert by_id[theirs]["state"] == "read"
    assert by_id[mine]["deleted"] is True


def test_chat_ends_at_end_of_input_and_shows_history(
    tmp_path: Path, keyboard: io.TextIOWrapper
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    create(alice, "Alice")
    bob_id = user_id_of(create(bob, "Bob"))
    run(alice, "contact", "add", bob_id, "--name", "Bob", "--address", "/ip4/127.0.0.1/tcp/1")
    assert run(alice, "send", "bob", "queued for later", "--wait", "0")[0] == 3
    run(alice, "contact", "block", "bob")
    chat = Background(["--data-dir", str(alice), "chat", bob_id[:12], "--no-listen"]).start()
    chat.out.wait_for("Type /help")
    type_line(keyboard, "are you blocked?")
    chat.out.wait_for("error: .* is blocked; unblock them first")
    keyboard.close()
    assert chat.join() == 0
    shown = chat.out.text()
    assert "Bob is blocked: `omega contact unblock` first to write." in shown
    assert re.search(r"\w{8} me: queued for later \[pending\]", shown)


def test_screen_redraws_the_prompt_in_a_terminal() -> None:
    out = io.StringIO()
    screen = Screen(out, interactive=True)
    screen.show("Bob: hi")
    assert out.getvalue() == "\r\x1b[KBob: hi\n"  # no prompt shown: none redrawn
    screen.prompting.set()
    screen.show("Bob: there?")
    assert out.getvalue().startswith(f"\r\x1b[KBob: hi\n\r\x1b[KBob: there?\n{PROMPT}")
    screen.close()
    assert out.getvalue().endswith("\r\x1b[K")
    plain = io.StringIO()
    Screen(plain, interactive=False).show("Bob: hi")
    assert plain.getvalue() == "Bob: hi\n"


@pytest.mark.anyio
async def test_terminal_input_is_read_with_input(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["first line"])

    def fake_input(prompt: str) -> str:
        assert prompt == PROMPT
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    send, receive = anyio.create_memory_object_stream[str | None](4)
    prompting = threading.Event()
    reader = threading.Thread(
        target=_read_lines,
        args=(io.StringIO(), send, anyio.lowlevel.current_token(), prompting),
        daemon=True,
    )
    reader.start()
    with send, receive:
        assert await receive.receive() == "first line"
        assert await receive.receive() is None
    await anyio.to_thread.run_sync(reader.join)
    assert not prompting.is_set()
