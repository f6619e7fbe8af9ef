"""The layering rules of docs/architecture.md, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import omega

SRC = Path(omega.__file__).resolve().parent

# Lower number = lower layer. A module may import omega modules of its own
# layer or below, never above. Packages not listed yet get a rank when they land.
LAYER_RANK = {
    "errors": 0,
    "_accel": 0,
    "protocol": 1,
    "crypto": 2,
    "session": 3,
    "transport": 3,
    "storage": 3,
    "groups": 4,
    "sync": 4,
    "discovery": 4,
    "mailbox": 4,
    "client": 5,
    "testing": 5,
    "bot": 6,
    "server": 6,
    "sim": 6,
    "cli": 7,
    "demo": 7,
}

# Sans-I/O layers: no event loops, sockets, clocks or ambient randomness.
SANS_IO_LAYERS = {"protocol", "crypto", "session"}
FORBIDDEN_IN_SANS_IO = {
    "asyncio",
    "anyio",
    "socket",
    "time",
    "random",
    "os",
    "threading",
    "secrets",
    "datetime",
}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "_generated" not in p.parts)


def _layer_of(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "omega":
                names.extend(f"omega.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layers_only_import_downwards(path: Path) -> None:
    layer = _layer_of(path)
    if layer == "__init__":
        return  # the top-level package re-exports the public API of every layer
    assert layer in LAYER_RANK, f"give the new package {layer!r} a rank in LAYER_RANK"
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "omega" or len(parts) < 2:
            continue
        target = parts[1]
        assert target in LAYER_RANK, f"{name} is not a known layer"
        assert LAYER_RANK[target] <= LAYER_RANK[layer], (
            f"{path.relative_to(SRC)} ({layer}) imports {name}, a higher layer"
        )


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if _layer_of(p) in SANS_IO_LAYERS],
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_sans_io_layers_touch_no_io_clock_or_randomness(path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] not in FORBIDDEN_IN_SANS_IO, (
            f"{path.relative_to(SRC)} imports {name}: inject it instead"
        )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_postpone_annotations_and_stay_small(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    if source.strip():
        assert "from __future__ import annotations" in source
    assert source.count("\n") < 800, "STYLE.md: about 600 lines, 800 at most; split by concern"
    assert "urandom" not in source or _layer_of(path) not in SANS_IO_LAYERS


def test_public_api_is_pinned() -> None:
    assert sorted(omega.__all__) == ["__version__", "accelerated", "accelerator_status"]


def test_every_public_name_has_a_docstring() -> None:
    import omega.errors
    import omega.protocol

    for module in (omega, omega.errors, omega.protocol):
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value):
                assert value.__doc__, f"{module.__name__}.{name} has no docstring"


def test_accelerator_status_reports_every_feature() -> None:
    status = omega.accelerator_status()
    assert set(status) == {"framing", "codec", "ratchet"}
    assert omega.accelerated() == all(status.values())


def test_pure_python_can_be_forced() -> None:
    code = "import omega; print(omega.accelerated(), omega.accelerator_status())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"OMEGA_PURE_PYTHON": "1", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False {'framing': False, 'codec': False, 'ratchet': False}"
