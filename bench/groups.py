"""Benchmark groups: Sender Keys fan-out against pairwise encryption, rekeys, the operation log.

Figures, each beside a baseline measured in the same run:

* ``send``: one member sends a 256-byte message to a group of N devices.
  Sender Keys encrypt it once (the same ciphertext fans out to every device)
  and every device verifies and decrypts it; the baseline encrypts it N
  times, once per pairwise Double Ratchet session, and every device decrypts
  its own copy. Sender and receiver CPU time and bytes on the wire.
* ``rekey``: removing one member of N. The remover signs the removal; every
  remaining member verifies and applies it, rotates its sender key and sends
  the new distribution over N-2 pairwise sessions. One member's share is
  measured (sign/verify, rotate, N-2 pairwise encryptions); the group's total
  is that times N-1 (members rekey in parallel on their own devices).
* ``log``: loading an N-member group's operation log (every signature and
  certificate verified, then the deterministic replay), beside the floor of
  verifying the same Ed25519 signatures alone; and the replay alone.

N is 256 (the default member limit) and 1000 (Signal's cap) for these.

* ``receive``: what a member device persists per group message it receives
  and per one it sends, in a group of N = 16 and 256 member devices (one
  device each, every one holding a sender key). The baseline is the layout
  before the split, measured in the same run: the whole session encoded
  (``GroupSession.to_bytes``) and sealed as one value; against it the parts
  the message changed (``take_changes``: one sender record, or our outbound
  key) sealed alike. Bytes are the sealed values written; microseconds the
  encoding and sealing. Then end to end through an encrypted SQLite key
  store: one transaction that decrypts the message, writes the group state
  (old: the whole blob; new: the sender's record) and the inbox entry, and
  commits (``synchronous=FULL``: each commit reaches the disk).

    python bench/groups.py            # full run
    python bench/groups.py --quick    # under a minute

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from omega.client._group_store import write_changes
from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    InboundSenderKeys,
    LocalDevice,
    OutboundSenderKey,
    PrekeyConfig,
    PrekeyStore,
    RatchetSession,
    accept_session,
    certify_device,
    initiate_session,
    verify_device_certificate,
    verify_signature,
)
from omega.groups import GroupConfig, GroupLog, GroupSession, verify_operation
from omega.groups._state import resolve
from omega.protocol import (
    GroupOperationBatch,
    GroupSessionState,
    SignedGroupOperation,
    decode_message,
    encode_message,
)
from omega.storage import InboxEntry, SQLiteKeyStore
from omega.storage._sealing import Sealer
from omega.testing.random import SeededRandom

PLAINTEXT = bytes(range(256))
OPERATION_CONTEXT = b"omega/group-operation/v1"
CERTIFICATE_CONTEXT = b"omega/device-certificate/v1"
NOW = 1_700_000_000_000


def _timed(body: Callable[[], object]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        body()
        return time.perf_counter() - start
    finally:
        gc.enable()


def _median(body: Callable[[], object], repeats: int) -> float:
    return statistics.median(_timed(body) for _ in range(repeats))


def _device(index: int) -> tuple[str, LocalDevice]:
    seed = index.to_bytes(4, "big")
    identity = IdentityKeyPair.from_seed(b"bench-id" + seed + bytes(20))
    key_pair = DeviceKeyPair.from_seed(b"bench-dv" + seed + bytes(20))
    signed = certify_device(identity, key_pair.public_key, name="bench", created_at=NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity.user_id, LocalDevice(key_pair=key_pair, certificate=certificate)


SENDER_ID, SENDER = _device(0)
_STORE = PrekeyStore.generate(
    _device(1)[1].key_pair,
    now=NOW,
    config=PrekeyConfig(one_time_prekey_target=2, one_time_prekey_low_water=1),
    rng=SeededRandom(b"s"),
).to_bytes()
_RECEIVER_ID, _RECEIVER = _device(1)


def _session_pairs(count: int) -> list[tuple[RatchetSession, RatchetSession]]:
    """``count`` established pairwise sessions from the sender (to one stand-in device each)."""
    pairs = []
    for index in range(count):
        store = PrekeyStore.from_bytes(_STORE)
        rng = SeededRandom(b"pair%d" % index)
        bundle = store.build_bundle(_RECEIVER.certificate, one_time_prekey_id=1)
        sender, first = initiate_session(SENDER, bundle, b"", user_id=_RECEIVER_ID, rng=rng)
        receiver = accept_session(_RECEIVER, store, first, now=NOW).session
        sender.decrypt(receiver.encrypt(b"", rng=rng))
        pairs.append((sender, receiver))
    return pairs


def bench_send(
    devices: int, pairs: list[tuple[RatchetSession, RatchetSession]]
) -> dict[str, float]:
    outbound = OutboundSenderKey.generate(
        "bench", device_key=SENDER.device_key, rng=SeededRandom(b"k")
    )
    distribution = outbound.distribution()
    receivers = [
        InboundSenderKeys.from_distribution(distribution, sender_device_key=SENDER.device_key)
        for _ in range(devices)
    ]
    sent: list[bytes] = []
    rounds = 50  # one encryption is too short to time alone: the mean of 50
    sender_key_encrypt = _timed(
        lambda: sent.extend(outbound.encrypt(PLAINTEXT) for _ in range(rounds))
    )
    sender_key_encrypt /= rounds
    ciphertext = sent[0]
    sender_key_decrypt = _timed(lambda: [r.decrypt(ciphertext) for r in receivers])
    copies: list[bytes] = []
    pairwise_encrypt = _timed(lambda: copies.extend(s.encrypt(PLAINTEXT) for s, _ in pairs))
    pairwise_decrypt = _timed(
        lambda: [receiver.decrypt(copy) for (_, receiver), copy in zip(pairs, copies, strict=True)]
    )
    return {
        "sender_key_encrypt_ms": sender_key_encrypt * 1e3,
        "sender_key_decrypt_all_ms": sender_key_decrypt * 1e3,
        "sender_key_bytes_per_device": len(ciphertext),
        "sender_key_bytes_total": len(ciphertext) * devices,
        "pairwise_encrypt_ms": pairwise_encrypt * 1e3,
        "pairwise_decrypt_all_ms": pairwise_decrypt * 1e3,
        "pairwise_bytes_per_device": statistics.mean(len(copy) for copy in copies),
        "pairwise_bytes_total": sum(len(copy) for copy in copies),
        "sender_speedup": pairwise_encrypt / sender_key_encrypt,
    }


def _group(members: int) -> GroupLog:
    config = GroupConfig(max_members=members)
    log, _ = GroupLog.create(SENDER, name="bench", now=NOW, config=config, rng=SeededRandom(b"g"))
    for index in range(1, members):
        log.add_member(SENDER, _device(index)[0], now=NOW)
    return log


def bench_rekey(
    members: int, pairs: list[tuple[RatchetSession, RatchetSession]]
) -> dict[str, float]:
    log = _group(members)
    replica, _ = GroupLog.from_batch(log.to_bytes(), config=log.config)
    removed = _device(members - 1)[0]
    removal: list[bytes] = []
    sign = _timed(lambda: removal.append(log.remove_member(SENDER, removed, now=NOW)))
    apply = _timed(lambda: replica.receive(removal[0]))
    outbound = OutboundSenderKey.generate(
        "bench", device_key=SENDER.device_key, rng=SeededRandom(b"k")
    )
    rng = SeededRandom(b"rotate")
    new_distribution: list[bytes] = []
    rotate = _timed(lambda: new_distribution.append(outbound.rotate(rng=rng)))
    remaining = pairs[: members - 2]
    distribute = _timed(lambda: [s.encrypt(new_distribution[0]) for s, _ in remaining])
    per_member = apply + rotate + distribute
    return {
        "remove_sign_ms": sign * 1e3,
        "remove_verify_apply_ms": apply * 1e3,
        "rotate_ms": rotate * 1e3,
        "distribute_pairwise_ms": distribute * 1e3,
        "per_member_ms": per_member * 1e3,
        "group_total_cpu_ms": per_member * (members - 1) * 1e3,
        "distribution_messages": (members - 1) * (members - 2),
    }


def bench_log(members: int, repeats: int) -> dict[str, float]:
    log = _group(members)
    data = log.to_bytes()
    batch = decode_message(GroupOperationBatch, data, max_size=len(data))
    signed: list[SignedGroupOperation] = list(batch.operations)
    verified = {}
    for item in signed:
        operation = verify_operation(encode_message(item))
        verified[operation.op_id] = operation
    certificate = SENDER.certificate
    load = _median(lambda: GroupLog.from_batch(data, config=log.config), repeats)

    def floor() -> None:
        for item in signed:
            verify_signature(SENDER.device_key, OPERATION_CONTEXT + item.operation, item.signature)
            verify_signature(
                certificate.identity_key,
                CERTIFICATE_CONTEXT + certificate.certificate_bytes,
                certificate.signature,
            )

    signatures = _median(floor, repeats)
    replay = _median(lambda: resolve(verified, log.genesis_id), repeats)
    return {
        "operations": len(batch.operations),
        "log_bytes": len(data),
        "load_ms": load * 1e3,
        "signature_floor_ms": signatures * 1e3,
        "load_over_floor": load / signatures,
        "replay_only_ms": replay * 1e3,
    }


def _member_sessions(devices: int) -> tuple[GroupSession, list[tuple[str, OutboundSenderKey]]]:
    """Member 1's session in a group of ``devices`` members, holding every other one's key."""
    log = _group(devices)
    replica, _ = GroupLog.from_batch(log.to_bytes(), config=log.config)
    session = GroupSession.start(replica, _RECEIVER, rng=SeededRandom(b"member"))
    senders = []
    for index in (0, *range(2, devices)):
        user_id, device = _device(index)
        outbound = OutboundSenderKey.generate(
            replica.group_id, device_key=device.device_key, rng=SeededRandom(b"o%d" % index)
        )
        session.add_distribution(user_id, device.device_key, outbound.distribution())
        senders.append((user_id, outbound))
    return session, senders


def _persist_old(sealer: Sealer, session: GroupSession) -> int:
    return len(sealer.seal("group_states/state", bytes(32), session.to_bytes()))


def _persist_new(sealer: Sealer, session: GroupSession) -> int:
    changes = session.take_changes()
    written = [changes.record, changes.outbound, *changes.senders.values()]
    return sum(len(sealer.seal("part", bytes(32), part)) for part in written if part is not None)


def _per_message(
    session: GroupSession, step: Callable[[], object], persist: Callable[[], int], rounds: int
) -> tuple[float, float]:
    """Mean bytes and microseconds of ``persist`` after each of ``rounds`` ``step``s."""
    sizes: list[int] = []
    seconds = 0.0
    gc.collect()
    gc.disable()  # for the whole loop: a collection before each short call would cool the caches
    try:
        for _ in range(rounds):
            step()
            start = time.perf_counter()
            sizes.append(persist())
            seconds += time.perf_counter() - start
    finally:
        gc.enable()
    return statistics.mean(sizes), seconds / rounds * 1e6


def bench_receive(devices: int, rounds: int) -> dict[str, float]:
    session, senders = _member_sessions(devices)
    sealer = Sealer(b"S" * 32)
    session.take_changes()  # stored once, in parts
    user_id, sender = senders[devices // 2 - 1]
    device_key = sender.device_key

    def receive() -> None:
        session.decrypt(user_id, device_key, sender.encrypt(PLAINTEXT))

    def send() -> None:
        session.encrypt(PLAINTEXT)

    figures: dict[str, float] = {}
    for kind, step in (("receive", receive), ("send", send)):
        old_bytes, old_us = _per_message(
            session, step, lambda: _persist_old(sealer, session), rounds
        )
        new_bytes, new_us = _per_message(
            session, step, lambda: _persist_new(sealer, session), rounds
        )
        figures |= {
            f"{kind}_old_bytes": old_bytes,
            f"{kind}_new_bytes": new_bytes,
            f"{kind}_old_us": old_us,
            f"{kind}_new_us": new_us,
            f"{kind}_bytes_ratio": old_bytes / new_bytes,
            f"{kind}_speedup": old_us / new_us,
        }
    old_sqlite, new_sqlite = anyio.run(_sqlite_round_trip, session, user_id, sender, rounds)
    figures |= {
        "sqlite_old_us": old_sqlite,
        "sqlite_new_us": new_sqlite,
        "sqlite_speedup": old_sqlite / new_sqlite,
    }
    return figures


async def _sqlite_round_trip(
    session: GroupSession, user_id: str, sender: OutboundSenderKey, rounds: int
) -> tuple[float, float]:
    """Median microseconds of one received message's key-store transaction, old and new."""
    group_id = session.log.group_id
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for layout in ("old", "new"):
            store = await SQLiteKeyStore.open(Path(folder) / f"{layout}.db", encryption_key=KEY)
            async with store:
                async with store.transaction() as tx:
                    session.take_changes()
                    await tx.save_group_state(group_id, session.to_bytes())
                    for device_key, record in _all_senders(session).items():
                        await tx.save_group_sender(group_id, device_key, record)
                    await tx.save_group_outbound(group_id, session.outbound.to_bytes())
                times = []
                for index in range(rounds):
                    ciphertext = sender.encrypt(PLAINTEXT)
                    start = time.perf_counter()
                    async with store.transaction() as tx:
                        plaintext = session.decrypt(user_id, sender.device_key, ciphertext)
                        if layout == "old":
                            await tx.save_group_state(group_id, session.to_bytes())
                        else:
                            await write_changes(tx, group_id, session.take_changes())
                        await tx.add_to_inbox(
                            InboxEntry(
                                message_id=f"{layout}-{index}",
                                sender_device_key=sender.device_key,
                                plaintext=plaintext,
                                received_at=NOW,
                            )
                        )
                    times.append(time.perf_counter() - start)
                results.append(statistics.median(times) * 1e6)
    return results[0], results[1]


KEY = b"K" * 32


def _all_senders(session: GroupSession) -> dict[bytes, bytes]:
    state = decode_message(GroupSessionState, session.to_bytes())
    return {
        InboundSenderKeys.from_bytes(item.keys).sender_device_key: encode_message(item)
        for item in state.senders
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    figures: dict[str, object] = {}
    for devices in (16, 256):
        receive = bench_receive(devices, 20 if args.quick else 100)
        figures[f"receive_{devices}"] = receive
        print(f"--- receive: what is persisted per group message, {devices} member devices ---")
        for kind in ("receive", "send"):
            print(
                f"{kind:8} old (whole session) {receive[f'{kind}_old_bytes']:9.0f} B "
                f"{receive[f'{kind}_old_us']:8.1f} us | new (changed part) "
                f"{receive[f'{kind}_new_bytes']:6.0f} B {receive[f'{kind}_new_us']:6.1f} us | "
                f"{receive[f'{kind}_bytes_ratio']:.0f}x fewer bytes, "
                f"{receive[f'{kind}_speedup']:.0f}x faster"
            )
        print(
            f"sqlite   one received message's transaction (decrypt, write, inbox, commit): "
            f"old {receive['sqlite_old_us']:.0f} us, new {receive['sqlite_new_us']:.0f} us "
            f"({receive['sqlite_speedup']:.1f}x)"
        )
    for members in (256, 1000):
        pairs = _session_pairs(members)
        send = bench_send(members, pairs)
        rekey = bench_rekey(members, pairs)
        log = bench_log(members, repeats)
        figures[f"send_{members}"] = send
        figures[f"rekey_{members}"] = rekey
        figures[f"log_{members}"] = log
        print(f"--- {members} member devices ---")
        print(
            f"send:   sender keys encrypt {send['sender_key_encrypt_ms']:.3f} ms once, "
            f"{send['sender_key_bytes_per_device']} B/device; pairwise encrypt "
            f"{send['pairwise_encrypt_ms']:.1f} ms, "
            f"{send['pairwise_bytes_per_device']:.0f} B/device "
            f"(sender {send['sender_speedup']:.0f}x faster with sender keys)"
        )
        print(
            f"        all devices decrypt: sender keys {send['sender_key_decrypt_all_ms']:.1f} ms, "
            f"pairwise {send['pairwise_decrypt_all_ms']:.1f} ms; bytes total "
            f"{send['sender_key_bytes_total']} vs {send['pairwise_bytes_total']}"
        )
        print(
            f"rekey:  sign removal {rekey['remove_sign_ms']:.2f} ms; per remaining member "
            f"{rekey['per_member_ms']:.1f} ms (verify+apply {rekey['remove_verify_apply_ms']:.2f}, "
            f"rotate {rekey['rotate_ms']:.2f}, distribute {rekey['distribute_pairwise_ms']:.1f}); "
            f"group CPU total {rekey['group_total_cpu_ms']:.0f} ms, "
            f"{rekey['distribution_messages']} pairwise messages"
        )
        print(
            f"log:    {log['operations']} operations, {log['log_bytes']} B; load "
            f"{log['load_ms']:.1f} ms vs Ed25519 floor {log['signature_floor_ms']:.1f} ms "
            f"({log['load_over_floor']:.2f}x); replay alone {log['replay_only_ms']:.1f} ms"
        )
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
