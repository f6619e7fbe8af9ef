"""The ``omega`` command, run in-process and as the installed console script."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import omega
from omega.cli import default_data_dir, main
from omega.crypto import import_identity


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OMEGA_PASSPHRASE", "a long test passphrase")
    return "a long test passphrase"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"omega {omega.__version__}"


def test_id_new_then_show(tmp_path: Path, passphrase: str) -> None:
    status, created = run("--data-dir", str(tmp_path), "id", "new", "--name", "Ana Lú")
    assert status == 0
    user_id = next(line.split()[-1] for line in created.splitlines() if line.startswith("User"))
    assert user_id.startswith("omega1")
    for name in ("identity.omega", "identity.pub", "identity.txt"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, name

    status, shown = run("--data-dir", str(tmp_path), "id", "show")
    assert status == 0
    assert f"User id:     {user_id}" in shown
    assert f"Contact URI: omega://{user_id}?name=Ana%20L%C3%BA" in shown
    assert "primary" in shown
    assert "█" in shown  # the QR code

    backup = import_identity((tmp_path / "identity.omega").read_bytes(), passphrase)
    assert backup.to_identity().user_id == user_id


def test_show_without_qr_and_png(tmp_path: Path, passphrase: str) -> None:
    assert run("--data-dir", str(tmp_path), "id", "new", "--device", "desk")[0] == 0
    png = tmp_path / "me.png"
    status, shown = run("--data-dir", str(tmp_path), "id", "show", "--no-qr", "--qr-png", str(png))
    assert status == 0
    assert "█" not in shown
    assert "desk" in shown
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_new_refuses_to_overwrite_without_force(
    tmp_path: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 0
    first = (tmp_path / "identity.txt").read_text()
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "identity.txt").read_text() == first
    assert run("--data-dir", str(tmp_path), "id", "new", "--force")[0] == 0
    assert (tmp_path / "identity.txt").read_text() != first


def test_show_without_identity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--data-dir", str(tmp_path / "nothing"), "id", "show")[0] == 1
    assert "create one with `omega init`" in capsys.readouterr().err


def test_show_detects_tampering(
    tmp_path: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 0
    public = bytearray((tmp_path / "identity.pub").read_bytes())
    public[-1] ^= 0x01  # inside the signature
    (tmp_path / "identity.pub").write_bytes(bytes(public))
    assert run("--data-dir", str(tmp_path), "id", "show")[0] == 1
    assert "damaged or were tampered with" in capsys.readouterr().err


def test_show_detects_a_swapped_user_id(
    tmp_path: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 0
    assert run("--data-dir", str(other), "id", "new")[0] == 0
    (tmp_path / "identity.txt").write_text((other / "identity.txt").read_text())
    assert run("--data-dir", str(tmp_path), "id", "show")[0] == 1
    assert "tampered" in capsys.readouterr().err


def test_passphrase_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMEGA_PASSPHRASE", raising=False)
    secret = tmp_path / "pass.txt"
    secret.write_text("from a file\n")
    data = tmp_path / "data"
    assert run("--data-dir", str(data), "id", "new", "--passphrase-file", str(secret))[0] == 0
    assert import_identity((data / "identity.omega").read_bytes(), "from a file")


def test_missing_passphrase_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run(
        "--data-dir", str(tmp_path), "id", "new", "--passphrase-file", str(tmp_path / "nope")
    )
    assert status == 1
    assert "cannot read the passphrase file" in capsys.readouterr().err


def test_no_passphrase_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OMEGA_PASSPHRASE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 1
    assert "no passphrase" in capsys.readouterr().err
    assert not (tmp_path / "identity.omega").exists()


def test_prompted_passphrases_must_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OMEGA_PASSPHRASE", raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["first", "second", "same", "same"])
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 1
    assert "the two passphrases differ" in capsys.readouterr().err
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 0
    assert import_identity((tmp_path / "identity.omega").read_bytes(), "same")


def test_empty_passphrase_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMEGA_PASSPHRASE", "")
    assert run("--data-dir", str(tmp_path), "id", "new")[0] == 1
    assert "empty passphrase" in capsys.readouterr().err


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OMEGA_HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home"
    monkeypatch.delenv("OMEGA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "omega"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "omega"


def test_demo_runs_every_step() -> None:
    status, output = run("demo", "--no-qr")
    assert status == 0, output
    for marker in (
        "[1] Alice, Bob and Carol create identities",
        "store server (SQLite) at http://127.0.0.1:",
        "DHT bootstrap node at udp://127.0.0.1:",
        "Alice listens on /ip4/127.0.0.1/tcp/",
        "both contacts verified",
        "Bob received: 'Hi Bob! Found you through the DHT.'",
        "is read",
        "Alice received: 'Hi Alice! Lunch at noon?' (a reply)",
        "Bob got a reaction: 👍",
        "Bob sees an edit: 'Hi Bob! Found you through the DHT :)'",
        "search 'lunch' finds ['Hi Alice! Lunch at noon?']",
        "the store holds 1 envelope(s) for Carol's device: ciphertext only",
        "Carol received: 'Carol, see you at noon too?'",
        "deleted once acknowledged",
        "Done.",
    ):
        assert marker in output
    assert "█" not in output


def test_demo_prints_qr_codes() -> None:
    status, output = run("demo")
    assert status == 0
    assert "█" in output or "▀" in output


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "omega"
    result = subprocess.run(
        [str(script), "--data-dir", str(tmp_path), "id", "show"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("omega: error: no identity in")
