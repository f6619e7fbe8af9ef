"""``omega device``: link a new device, list, rename and revoke our devices (docs/cli.md).

``omega device link`` on an existing device shows a one-time link code (text
and QR code) and waits; ``omega device link CODE`` on the new device joins the
identity, creates its data directory and syncs the history.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio

from omega.cli._common import DEFAULT_LISTEN, add_client_options, add_listen_options, open_client
from omega.client.datadir import SECRET_FILE, DataDir
from omega.errors import ConfigurationError

if TYPE_CHECKING:
    from omega.client import Client

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``omega device`` to the ``omega`` parser."""
    from omega.cli._client_commands import _sync

    device = commands.add_parser("device", help="link, list, rename and revoke your devices")
    actions = device.add_subparsers(dest="device_command", required=True, metavar="ACTION")

    link = actions.add_parser(
        "link",
        help="show a link code (existing device), or join with one (new device)",
        description="Without CODE: show a one-time link code as text and QR code and wait "
        "until a new device uses it. With CODE (on the new device): join the identity, "
        "create this data directory and receive the history.",
    )
    link.add_argument("code", nargs="?", default=None, help="the link code shown by the other")
    link.add_argument("--device", default="device", help="the new device's name (with CODE)")
    link.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="code lifetime / wait"
    )
    link.add_argument("--qr-png", default=None, help="also write the QR code to this PNG file")
    link.add_argument("--no-qr", action="store_true", help="do not print the QR code")
    add_listen_options(link, default=(DEFAULT_LISTEN,))
    add_client_options(link)
    link.set_defaults(handler=_sync(_link))

    listing = actions.add_parser("list", help="list your devices")
    add_client_options(listing)
    listing.set_defaults(handler=_sync(_list), no_listen=True)

    rename = actions.add_parser("rename", help="rename one of your devices")
    rename.add_argument("device_id", metavar="DEVICE", help="a device id or unique prefix")
    rename.add_argument("name", metavar="NAME", help="its new name")
    add_client_options(rename)
    rename.set_defaults(handler=_sync(_rename), no_listen=True)

    revoke = actions.add_parser("revoke", help="revoke one of your other devices for good")
    revoke.add_argument("device_id", metavar="DEVICE", help="a device id or unique prefix")
    revoke.add_argument("--reason", default="", help="why (kept in the device list)")
    add_client_options(revoke)
    revoke.set_defaults(handler=_sync(_revoke), no_listen=True)


def _print_devices(client: Client, out: TextIO) -> None:
    from omega.cli._common import format_time

    for device in client.devices():
        seen = (
            "this device"
            if device.this_device
            else (
                f"last seen {format_time(device.last_seen)}" if device.last_seen else "not seen yet"
            )
        )
        created = format_time(device.created_at)
        print(f"  {device.device_id}  {device.name:<20} created {created}  {seen}", file=out)


async def _list(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=True) as client:
        print(f"Devices of {client.user_id}:", file=out)
        _print_devices(client, out)
    return 0


async def _rename(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=True) as client:
        device = await client.rename_device(args.device_id, args.name)
        DataDir(Path(args.data_dir)).save_public(client.identity)
        print(f"Renamed {device.device_id} to {device.name}.", file=out)
    return 0


async def _revoke(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=True) as client:
        before = {device.device_id: device.name for device in client.devices()}
        await client.revoke_device(args.device_id, reason=args.reason)
        DataDir(Path(args.data_dir)).save_public(client.identity)
        gone = sorted(set(before) - {device.device_id for device in client.devices()})
        print(", ".join(f"Revoked {d} ({before[d]})." for d in gone), file=out)
        _print_devices(client, out)
    return 0


async def _link(args: argparse.Namespace, out: TextIO) -> int:
    if args.code is not None:
        return await _join(args, out)
    import segno

    async with open_client(args, online=True) as client:
        link = await client.create_link_code(lifetime=args.timeout)
        print("Link code (valid once, for a few minutes):", file=out)
        print(link.code, file=out)
        qr = segno.make(link.code, error="m")
        if not args.no_qr:
            qr.terminal(out=out, compact=True)
        if args.qr_png is not None:
            qr.save(args.qr_png, scale=8, border=4)
            print(f"QR code written to {args.qr_png}", file=out)
        print("On the new device run: omega device link CODE --device NAME", file=out, flush=True)
        device = await link.wait(timeout=args.timeout + 1)
        DataDir(Path(args.data_dir)).save_public(client.identity)
        print(
            f"Linked {device.device_id} ({device.name}); verification code "
            f"{link.verification_code}: the new device shows the same.",
            file=out,
        )
        with anyio.move_on_after(5):  # let the history go out to it
            await anyio.sleep(5)
    return 0


async def _join(args: argparse.Namespace, out: TextIO) -> int:
    from omega.cli import _read_passphrase
    from omega.client import Client

    directory = DataDir(Path(args.data_dir))
    if directory.exists():
        raise ConfigurationError(
            f"{directory.path / SECRET_FILE} already exists: link into an empty data directory"
        )
    linked = await Client.link(args.code, device_name=args.device)
    print(
        f"Joined {linked.identity.user_id} as {linked.identity.device.device_id}; "
        f"verification code {linked.verification_code}.",
        file=out,
    )
    passphrase = _read_passphrase(args, confirm=True)
    directory.save_identity(linked.identity, passphrase)
    book = directory.load_address_book()
    book[linked.identity.user_id] = [str(a) for a in linked.addresses]
    directory.save_address_book(book)
    async with open_client(args, online=True) as client:
        with anyio.move_on_after(min(args.timeout, 30)):
            while not await client.contacts():
                await anyio.sleep(0.2)
        print(f"Synced {len(await client.contacts())} contacts.", file=out)
    return 0
