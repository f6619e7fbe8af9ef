"""``omega device``: linking a new data directory over loopback TCP, list, rename, revoke."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import LOOPBACK, background, create, run, user_id_of


def test_link_list_rename_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    phone, laptop, bob = tmp_path / "phone", tmp_path / "laptop", tmp_path / "bob"
    alice_uri = create(phone, "Alice")
    bob_uri = create(bob, "Bob")
    run(phone, "contact", "add", bob_uri)
    shower = background(
        phone,
        "device",
        "link",
        "--listen",
        LOOPBACK,
        "--no-qr",
        "--timeout",
        "30",
        "--qr-png",
        str(tmp_path / "code.png"),
    )
    code = shower.out.wait_for(r"(OMEGA-LINK:\S+)").group(1)
    status, joined = run(
        laptop,
        "device",
        "link",
        code,
        "--device",
        "laptop",
        "--listen",
        LOOPBACK,
        "--timeout",
        "10",
    )
    assert status == 0, joined
    assert f"Joined {user_id_of(alice_uri)}" in joined
    assert "Synced 1 contacts." in joined
    verification = re.search(r"verification code (\d{3} \d{3})", joined).group(1)  # type: ignore[union-attr]
    assert shower.join() == 0
    assert verification in shower.out.text()
    assert (tmp_path / "code.png").exists()
    assert "laptop" in run(phone, "id", "--no-qr")[1]  # the public device list is updated

    status, listed = run(laptop, "device", "list")
    assert status == 0
    assert "laptop" in listed
    assert "this device" in listed
    assert "primary" in listed
    laptop_id = re.search(r"(\w{16})  laptop", listed).group(1)  # type: ignore[union-attr]
    status, renamed = run(phone, "device", "rename", laptop_id[:6], "work laptop")
    assert status == 0, renamed
    assert "work laptop" in renamed
    status, revoked = run(phone, "device", "revoke", laptop_id[:6], "--reason", "lost")
    assert status == 0, revoked
    assert f"Revoked {laptop_id}" in revoked
    assert "laptop" not in run(phone, "device", "list")[1]

    assert run(phone, "device", "revoke", "zzzz")[0] == 1
    assert "no single listed device" in capsys.readouterr().err
    assert run(laptop, "device", "link", "OMEGA-LINK:AAAA")[0] == 1
    assert "already exists" in capsys.readouterr().err
    assert run(tmp_path / "new", "device", "link", "OMEGA-LINK:AAAA")[0] == 1
    assert "link code" in capsys.readouterr().err
