"""The README's quick start and code samples stay true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quick_start_is_two_commands_and_ci_runs_the_test_command() -> None:
    match = re.search(
        r"(?is)^#+[^\n]*quick[ -]?start[^\n]*\n(.*?)```[a-z]*\n(.*?)```", README, re.M
    )
    assert match is not None
    commands = [line.strip() for line in match.group(2).splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("omega demo")
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_python_samples_run() -> None:
    samples = re.findall(r"```python\n(.*?)```", README, re.S)
    assert samples
    for sample in samples:
        exec(compile(sample, "README.md", "exec"), {})


def test_doc_links_resolve() -> None:
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (document.parent / target).exists(), f"{document.name} links to {target}"
