"""Every Python block of docs/guide.md runs and prints what the guide says it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
EXPECTED = [
    "Hello Bob",
    "queued until Bob is reachable pending",
    None,  # prints the safety number: checked below
    "Alice's message is read",
    "Sent while you were away",
    "{'Bob': ['Lunch at noon?', 'Just Bob and me now'], 'Carol': ['Lunch at noon?']}",
]


def test_the_guide_has_the_blocks_this_test_knows() -> None:
    assert len(BLOCKS) == len(EXPECTED)


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_guide_block_runs(index: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = EXPECTED[index]
    if expected is None:
        assert re.fullmatch(r"(\d{5} ){11}\d{5}\n", result.stdout)
    else:
        assert expected in result.stdout
