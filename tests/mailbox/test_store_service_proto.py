"""store_service.proto: the committed generated code is fresh; grpclib stays optional."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_protocol", ROOT / "scripts" / "generate_protocol.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_service_code_is_fresh() -> None:
    module = _generator()
    assert module.stale_files(target=module.STORE_SERVICE) == [], (
        "run: python scripts/generate_protocol.py"
    )


def test_service_staleness_is_detected(tmp_path: Path) -> None:
    module = _generator()
    module.generate(tmp_path, module.STORE_SERVICE)
    (tmp_path / "store_service.py").write_text("# edited by hand\n", encoding="utf-8")
    assert module.stale_files(tmp_path, target=module.STORE_SERVICE) == ["store_service.py"]


def test_grpclib_stays_out_of_the_protocol_and_mailbox_packages() -> None:
    # With grpclib unimportable, the sans-I/O protocol package, the mailbox package and the
    # gRPC client module still import; only constructing the client needs the extra.
    code = (
        "import sys; sys.modules['grpclib'] = None\n"
        "import omega.protocol, omega.mailbox, omega.mailbox.grpc\n"
        "from omega.errors import ConfigurationError\n"
        "try:\n"
        "    omega.mailbox.grpc.GrpcStoreClient('127.0.0.1', 1)\n"
        "except ConfigurationError as exc:\n"
        "    assert 'omega-p2p[grpc]' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('no ConfigurationError')\n"
        "assert not any(name.startswith('grpclib') and sys.modules[name] for name in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
