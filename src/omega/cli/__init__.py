"""The ``omega`` command.

``omega id new`` creates an identity in a data directory, ``omega id show``
prints its user id, contact URI and QR code, ``omega demo`` walks through what
the SDK does today on embedded defaults. The client commands (``init``,
``contact``, ``send``, ``listen``, ``chat``, ``history``) live in
:mod:`omega.cli._client_commands` and :mod:`omega.cli._chat`. See docs/cli.md.

Data directory layout (default ``$OMEGA_HOME``, else
``$XDG_DATA_HOME/omega``, else ``~/.local/share/omega``):

* ``identity.omega``: the identity export (Argon2id + XChaCha20-Poly1305,
  docs/protocol.md), readable by its owner only;
* ``identity.pub``: the public device list, an encoded ``SignedDeviceList``;
* ``identity.txt``: the user id on the first line, the display name on the
  second. ``omega id show`` needs no passphrase: it verifies the device list
  against the user id before printing anything, so a damaged or tampered
  file is reported rather than shown.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import segno

import omega
from omega.client.datadir import HOME_ENV, DataDir, default_data_dir
from omega.crypto import (
    ContactUri,
    VerifiedDeviceList,
)
from omega.errors import ConfigurationError, OmegaError

__all__ = ["default_data_dir", "main"]

PASSPHRASE_ENV = "OMEGA_PASSPHRASE"  # noqa: S105 - a variable name, not a secret

SERVE_COMMANDS: dict[str, str] = {
    "bootstrap": "omega.server.bootstrap.command",
    "relay": "omega.server.relay.command",
    "store": "omega.server.store.command",
}
"""The servers of ``omega serve``: name -> module. Each module exposes ``HELP``
(one line), ``configure(parser)`` adding its options, and ``run(args, out) -> int``.
It imports only the standard library at module level, so that ``omega --help``
works without the ``server`` extra; ``run`` imports what it needs and raises
:class:`~omega.errors.ConfigurationError` naming the extra when it is missing."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _read_passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    if args.passphrase_file is not None:
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read the passphrase file: {exc}") from exc
        return text.rstrip("\r\n")
    if (from_env := os.environ.get(PASSPHRASE_ENV)) is not None:
        return from_env
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"no passphrase: set {PASSPHRASE_ENV}, pass --passphrase-file, or run in a terminal"
        )
    passphrase = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Passphrase again: ") != passphrase:
        raise ConfigurationError("the two passphrases differ")
    return passphrase


def _print_qr(text: str, out: TextIO) -> None:
    segno.make(text, error="m").terminal(out=out, compact=True)


def cmd_id_new(args: argparse.Namespace, out: TextIO) -> int:
    """``omega id new``: the same as ``omega init``."""
    from omega.cli._client_commands import cmd_init

    return cmd_init(args, out)


def _describe(device_list: VerifiedDeviceList, uri: ContactUri, out: TextIO, *, qr: bool) -> None:
    print(f"User id:     {device_list.user_id}", file=out)
    print(f"Contact URI: {uri}", file=out)
    print(f"Devices (device list #{device_list.sequence}):", file=out)
    for device in device_list.devices:
        print(f"  {device.device_id}  {device.device_name}", file=out)
    if qr:
        _print_qr(str(uri), out)


def cmd_id_show(args: argparse.Namespace, out: TextIO) -> int:
    """``omega id show``: print the user id, contact URI, devices and QR code."""
    device_list, uri = DataDir(args.data_dir).load_public()
    _describe(device_list, uri, out, qr=not args.no_qr)
    if args.qr_png is not None:
        segno.make(str(uri), error="m").save(args.qr_png, scale=8, border=4)
        print(f"QR code written to {args.qr_png}", file=out)
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """``omega demo``: a guided tour of what works today."""
    from omega.demo import run_demo

    run_demo(out, qr=not args.no_qr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``omega`` command."""
    from omega.cli import _client_commands as client_commands
    from omega.cli import _device_command, _sim_command

    parser = argparse.ArgumentParser(
        prog="omega", description="Omega: peer-to-peer, end-to-end-encrypted messaging."
    )
    parser.add_argument("--version", action="version", version=f"omega {omega.__version__}")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the identity lives (default: ${HOME_ENV} or ~/.local/share/omega)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    identity = commands.add_parser("id", help="create and show your identity")
    identity.add_argument("--no-qr", action="store_true", help="do not print the QR code")
    identity.add_argument("--qr-png", default=None, help="also write the QR code to this PNG file")
    identity.set_defaults(handler=cmd_id_show)  # `omega id` alone is `omega id show`
    id_commands = identity.add_subparsers(dest="id_command", required=False, metavar="ACTION")
    new = id_commands.add_parser("new", help="create a new identity (the same as `omega init`)")
    client_commands.configure_init(new)
    new.set_defaults(handler=cmd_id_new)
    show = id_commands.add_parser("show", help="print your user id, contact URI and QR code")
    show.add_argument("--no-qr", action="store_true", help="do not print the QR code")
    show.add_argument("--qr-png", default=None, help="also write the QR code to this PNG file")
    show.set_defaults(handler=cmd_id_show)

    client_commands.register(commands)
    _device_command.register(commands)
    _sim_command.register(commands)

    demo = commands.add_parser("demo", help="a guided tour of the SDK on embedded defaults")
    demo.add_argument("--no-qr", action="store_true", help="do not print QR codes")
    demo.set_defaults(handler=cmd_demo)

    if SERVE_COMMANDS:
        serve = commands.add_parser("serve", help="run a self-hostable server")
        servers = serve.add_subparsers(dest="server", required=True, metavar="SERVER")
        for name, module_name in SERVE_COMMANDS.items():
            module = importlib.import_module(module_name)
            server = servers.add_parser(name, help=module.HELP)
            module.configure(server)
            server.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the ``omega`` command; return its exit status."""
    stream = out if out is not None else sys.stdout
    args = build_parser().parse_args(argv)
    if args.data_dir is None:
        args.data_dir = default_data_dir()
    try:
        status: int = args.handler(args, stream)
    except OmegaError as exc:
        print(f"omega: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("omega: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    sys.exit(main())
