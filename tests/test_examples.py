"""Every example in examples/ runs to completion and does what its docstring says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_tested() -> None:
    tested = {
        "contact_exchange.py",
        "quickstart.py",
        "two_peers.py",
        "sim_offline_delivery.py",
        "sim_partition.py",
        "sim_group.py",
        "echo_bot.py",
        "help_status_ping_bot.py",
        "sales_agent_bot.py",
    }
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_contact_exchange(tmp_path: Path) -> None:
    output = run_example("contact_exchange.py", str(tmp_path))
    assert "Bob added Alice with devices: ['laptop']" in output
    assert "-> verified" in output
    assert "Tampered device list refused" in output
    assert (tmp_path / "alice-contact.png").read_bytes().startswith(b"\x89PNG")


def test_quickstart() -> None:
    output = run_example("quickstart.py")
    assert "Bob received from omega1" in output
    assert "Hello Bob, this is end-to-end encrypted!" in output
    assert output.rstrip().endswith("is delivered")


def test_two_peers(tmp_path: Path) -> None:
    output = run_example("two_peers.py", str(tmp_path))
    assert "Bob <- 'Hi Bob! Lunch tomorrow?'" in output
    assert "Alice <- 'Sure, noon?' (reply to" in output
    assert "Alice <- reaction 👍" in output
    assert "  the message is pending" in output
    assert "Bob <- 'See you there!'" in output
    assert "Alice's message is delivered" in output
    assert "Bob searches 'lunch': ['Hi Bob! Lunch tomorrow?']" in output
    assert (tmp_path / "bob" / "messages.db").exists()


@pytest.mark.parametrize("name", ["contact_exchange.py", "two_peers.py"])
def test_examples_run_without_arguments(name: str) -> None:
    assert run_example(name)


def test_sim_offline_delivery(tmp_path: Path) -> None:
    output = run_example("sim_offline_delivery.py", str(tmp_path))
    assert "delivered 312 (100.00%)" in output
    assert "messages to peer 7 (offline until 900 s): 10" in output
    assert output.count("via store") == 10
    assert "every message to the offline peer arrived through the store" in output
    assert (tmp_path / "messages.csv").read_text().startswith("message_id,")
    assert (tmp_path / "latency_cdf.png").read_bytes().startswith(b"\x89PNG")


def test_sim_partition() -> None:
    output = run_example("sim_partition.py")
    assert "every message across the partition arrived after it healed at 300 s" in output
    assert "same seed, same trace" in output


def test_sim_group() -> None:
    output = run_example("sim_group.py")
    assert "removed members could open 0 of the" in output
    assert "and was sent 0 after it" in output
    assert "same seed, same trace" in output


def test_echo_bot() -> None:
    output = run_example("echo_bot.py")
    assert "Customer: Olá, tudo bem?\nEcho:     Olá, tudo bem?" in output
    assert output.rstrip().endswith("Echo:     🦜")


def test_help_status_ping_bot() -> None:
    output = run_example("help_status_ping_bot.py")
    assert "< /ping - Check that the bot answers." in output
    assert "> /ping\n< pong" in output
    assert "messages handled" in output
    assert "< one | two words" in output
    assert "< Unknown command /dance. Send /help for the list." in output


def test_sales_agent_bot() -> None:
    output = run_example("sales_agent_bot.py")
    assert "bot -> Customer: We have 120 boxes of tomato in stock. Total: R$ 2,450.00." in output
    assert "bot -> Customer: Order #1001 confirmed: 50 boxes of tomato." in output
    assert "bot -> Seller: Distribuidora Silva has been handed to you" in output
    assert "bot -> Customer: Lettuce ran out today" in output
    assert "bot -> Seller: [Distribuidora Silva] Yes please, reserve 30." in output
    assert "bot -> Customer: You are back with the assistant." in output
    assert "bot -> Customer: Your order #1001 left for delivery." in output
    assert "ERP received 6 signed webhook events" in output
