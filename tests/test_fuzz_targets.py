"""Every fuzz target in fuzz/ runs cleanly on random and structured inputs.

The targets are the fuzzers' entry points; running them here keeps them
importable and correct between fuzzing campaigns, and replays any crash
reproducers saved under fuzz/regressions/<target>/.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
TARGET_FILES = sorted(FUZZ_DIR.glob("fuzz_*.py"))


def _load(path: Path) -> Callable[[bytes], None]:
    spec = importlib.util.spec_from_file_location(f"omega_fuzz_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target: Callable[[bytes], None] = module.TestOneInput
    return target


def test_there_are_fuzz_targets() -> None:
    assert len(TARGET_FILES) >= 2


@pytest.mark.parametrize("path", TARGET_FILES, ids=lambda p: p.stem)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512))
def test_target_survives_random_input(path: Path, data: bytes) -> None:
    _load_cached(path)(data)


@pytest.mark.parametrize("path", TARGET_FILES, ids=lambda p: p.stem)
def test_target_replays_saved_regressions(path: Path) -> None:
    target = _load_cached(path)
    for reproducer in sorted((FUZZ_DIR / "regressions" / path.stem).glob("*")):
        target(reproducer.read_bytes())


_cache: dict[Path, Callable[[bytes], None]] = {}


def _load_cached(path: Path) -> Callable[[bytes], None]:
    if path not in _cache:
        _cache[path] = _load(path)
    return _cache[path]
