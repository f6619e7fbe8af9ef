"""Running the ``omega`` command in-process for the CLI tests: in the test's thread or beside it."""

from __future__ import annotations

import io
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from omega.cli import main

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
WAIT = 60.0
"""Longest wait for something to show up (a loaded CI machine can be slow; success is fast)."""


class Output(io.StringIO):
    """A text stream several threads write to, which a test can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            written = super().write(text)
            self._changed.notify_all()
        return written

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        with self._changed:
            return self.getvalue()

    def wait_for(self, pattern: str, *, timeout: float = WAIT) -> re.Match[str]:
        """The first match of the regular expression ``pattern``, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (found := re.search(pattern, self.getvalue())) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{pattern!r} never appeared in:\n{self.getvalue()}")
                self._changed.wait(left)
            return found


def run(data_dir: Path, *argv: str) -> tuple[int, str]:
    """Run ``omega --data-dir DATA_DIR ARGV...``; return the status and what it printed."""
    out = Output()
    status = main(["--data-dir", str(data_dir), *argv], out=out)
    return status, out.text()


@dataclass
class Background:
    """``omega`` running in a thread."""

    argv: list[str]
    out: Output = field(default_factory=Output)
    status: int | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> Background:
        def target() -> None:
            try:
                self.status = main(self.argv, out=self.out)
            except BaseException as exc:  # reported by join()
                self.error = exc

        self.thread = threading.Thread(target=target, name=f"omega {self.argv[2]}")
        self.thread.start()
        return self

    def join(self, timeout: float = WAIT) -> int:
        """Wait for the command to end; return its exit status."""
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running:\n{self.out.text()}"
        if self.error is not None:
            raise self.error
        assert self.status is not None
        return self.status


def background(data_dir: Path, *argv: str) -> Background:
    """Start ``omega --data-dir DATA_DIR ARGV...`` in a thread."""
    return Background(["--data-dir", str(data_dir), *argv]).start()


def create(data_dir: Path, name: str) -> str:
    """Create an identity named ``name``; return its contact URI."""
    status, output = run(data_dir, "init", "--name", name)
    assert status == 0, output
    return contact_uri(output)


def contact_uri(output: str) -> str:
    found = re.search(r"Contact URI: (\S+)", output)
    assert found is not None, output
    return found.group(1)


def user_id_of(uri: str) -> str:
    found = re.match(r"omega://(omega1[0-9a-z]+)", uri)
    assert found is not None
    return found.group(1)
