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

N is 256 (the default member limit) and 1000 (Signal's cap).

    python bench/groups.py            # full run
    python bench/groups.py --quick    # under a minute

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable

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
from omega.groups import GroupConfig, GroupLog, verify_operation
from omega.groups._state import resolve
from omega.protocol import (
    GroupOperationBatch,
    SignedGroupOperation,
    decode_message,
    encode_message,
)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    figures: dict[str, object] = {}
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
