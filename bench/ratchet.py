"""Benchmark Omega's Double Ratchet, X3DH and Sender Keys beside baselines measured in the same run.

Contenders, all with 256-byte plaintexts, encrypt + decrypt per message:

* ``omega``: :class:`omega.crypto.RatchetSession` on whichever path is live
  (the Cython symmetric step and envelope codec when built; run with
  ``OMEGA_PURE_PYTHON=1`` for the pure-Python path). The header says which.
* ``vodozemac``: Olm (``Session``) and Megolm (``GroupSession`` /
  ``InboundGroupSession``) from the ``vodozemac`` Python binding of the Rust
  library, established sessions, the same 256-byte plaintexts.
* ``doubleratchet``: the PyPI package (``doubleratchet`` 1.3, async API),
  configured like ours: X25519 ratchet, KDF_RK = HKDF-SHA256, KDF_CK = the
  two HMAC-SHA256 (``0x02`` next chain key, ``0x01`` message key), message
  keys expanded by HKDF into AES-256-GCM, 1000/2000 skip bounds; a second
  row uses its recommended AEAD (AES-256-CBC + HMAC-SHA256), as Signal does.
* ``floor``: bare primitives through pyca/cryptography: 2 HMAC-SHA256 +
  HKDF-SHA256 (44 bytes) + AES-256-GCM seal and open per message; for
  ping-pong add one X25519 key generation, two X25519 exchanges and two
  HKDF-SHA256 (64 bytes): the DH ratchet step's least work.

Workloads: a one-direction burst; ping-pong (the two sides alternate, so
every message carries a DH ratchet step); session setups (X3DH initiate and
accept, first message included; ``x3dh`` 1.3 + ``doubleratchet`` as the
baseline); Ed25519 sign + verify of 256 bytes (libsodium, detached, as Sender Keys do,
and vodozemac's curve25519-dalek through its binding: what Megolm signs with); and
Sender Keys encrypt + decrypt per group message (signature included); and
``state``: a session's ``to_bytes`` (what the session layer persists after
every message) and ``from_bytes`` (load with full validation), 5 skipped keys.
Every figure is the median of several interleaved runs with the garbage
collector paused. Times are the CPU time of the
benchmarking thread (``time.thread_time``), not wall-clock time: on a shared
machine, time spent preempted by other processes would otherwise land on
whichever contender was running. Every contender computes on this thread
(vodozemac's Rust code and doubleratchet's event loop included).

    python bench/ratchet.py            # full run, a few minutes
    python bench/ratchet.py --quick    # under a minute

Baselines: ``pip install -e '.[bench]'`` (doubleratchet, x3dh, vodozemac).
When one is missing the script says so and still prints the others. The
last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import omega
from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    InboundSenderKeys,
    LocalDevice,
    OutboundSenderKey,
    PrekeyConfig,
    PrekeyStore,
    RatchetSession,
    _symmetric,
    accept_session,
    certify_device,
    initiate_session,
    verify_device_certificate,
    verify_signature,
)
from omega.testing.random import SeededRandom as _Random

PLAINTEXT = bytes(range(256))
NOW = 1_700_000_000_000
Run = Callable[[int], float]  # runs n operations, returns the elapsed seconds


def _device(seed: int) -> tuple[IdentityKeyPair, LocalDevice]:
    identity = IdentityKeyPair.from_seed(bytes([seed]) * 32)
    key_pair = DeviceKeyPair.from_seed(bytes([seed + 1]) * 32)
    signed = certify_device(identity, key_pair.public_key, name="bench", created_at=NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity, LocalDevice(key_pair=key_pair, certificate=certificate)


ALICE_IDENTITY, ALICE = _device(11)
BOB_IDENTITY, BOB = _device(21)
BOB_STORE = PrekeyStore.generate(
    BOB.key_pair, now=NOW, config=PrekeyConfig(one_time_prekey_target=1000), rng=_Random(b"s")
).to_bytes()


def _timed(body: Callable[[], None]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        body()
        return time.thread_time() - start
    finally:
        gc.enable()


# --- Omega ------------------------------------------------------------------------------


def _omega_sessions() -> tuple[RatchetSession, RatchetSession]:
    store = PrekeyStore.from_bytes(BOB_STORE)
    rng = _Random(b"alice")
    alice, first = initiate_session(
        ALICE,
        store.build_bundle(BOB.certificate, one_time_prekey_id=1),
        b"",
        user_id=BOB_IDENTITY.user_id,
        rng=rng,
    )
    bob = accept_session(BOB, store, first, now=NOW).session
    alice.decrypt(bob.encrypt(b"", rng=_Random(b"bob")))  # established: no prekey wrapping
    return alice, bob


def omega_burst(n: int) -> float:
    alice, bob = _omega_sessions()

    def body() -> None:
        for _ in range(n):
            if bob.decrypt(alice.encrypt(PLAINTEXT)) != PLAINTEXT:
                raise AssertionError("omega burst")

    return _timed(body)


def _state_session() -> RatchetSession:
    alice, bob = _omega_sessions()
    for _ in range(5):  # a few skipped keys, as a real session holds
        alice.encrypt(PLAINTEXT)
    bob.decrypt(alice.encrypt(PLAINTEXT))
    return bob


def omega_state_save(n: int) -> float:
    """Serialize a session, as the session layer does after every message."""
    bob = _state_session()

    def body() -> None:
        for _ in range(n):
            bob.to_bytes()

    return _timed(body)


def omega_state_load(n: int) -> float:
    """Load (and fully validate) a serialized session, as on every cache miss."""
    data = _state_session().to_bytes()

    def body() -> None:
        for _ in range(n):
            RatchetSession.from_bytes(data)

    return _timed(body)


def omega_ping_pong(n: int) -> float:
    alice, bob = _omega_sessions()
    rng_a, rng_b = _Random(b"a"), _Random(b"b")

    def body() -> None:
        for index in range(n):
            if index % 2:
                ok = alice.decrypt(bob.encrypt(PLAINTEXT, rng=rng_b)) == PLAINTEXT
            else:
                ok = bob.decrypt(alice.encrypt(PLAINTEXT, rng=rng_a)) == PLAINTEXT
            if not ok:
                raise AssertionError("omega ping-pong")

    return _timed(body)


def omega_setup(n: int) -> float:
    store = PrekeyStore.from_bytes(BOB_STORE)
    bundles = [store.build_bundle(BOB.certificate, one_time_prekey_id=i + 1) for i in range(n)]
    rng = _Random(b"setup")

    def body() -> None:
        for bundle in bundles:
            _, first = initiate_session(
                ALICE, bundle, PLAINTEXT, user_id=BOB_IDENTITY.user_id, rng=rng
            )
            if accept_session(BOB, store, first, now=NOW).plaintext != PLAINTEXT:
                raise AssertionError("omega setup")

    return _timed(body)


def ed25519_sign_verify(n: int) -> float:
    """Sign and verify as Sender Keys do per message: detached, the key validated beforehand.

    The same libsodium calls as ``OutboundSenderKey.encrypt`` and
    ``InboundSenderKeys.decrypt`` (``omega.crypto._symmetric``, compiled when live).
    """
    key_pair = ALICE.key_pair
    public_key, secret_key = key_pair.public_key, key_pair._secret_key

    def body() -> None:
        for _ in range(n):
            signature = _symmetric.ed25519_sign(secret_key, PLAINTEXT)
            _symmetric.ed25519_verify(public_key, PLAINTEXT, signature, "bench")

    return _timed(body)


def ed25519_sign_verify_checked(n: int) -> float:
    """Sign and :func:`omega.crypto.verify_signature`, which validates the key every time."""
    key_pair = ALICE.key_pair

    def body() -> None:
        for _ in range(n):
            verify_signature(key_pair.public_key, PLAINTEXT, key_pair.sign(PLAINTEXT))

    return _timed(body)


def sender_keys(n: int) -> float:
    outbound = OutboundSenderKey.generate("bench", device_key=ALICE.device_key, rng=_Random(b"g"))
    inbound = InboundSenderKeys.from_distribution(
        outbound.distribution(), sender_device_key=ALICE.device_key
    )

    def body() -> None:
        for _ in range(n):
            if inbound.decrypt(outbound.encrypt(PLAINTEXT)) != PLAINTEXT:
                raise AssertionError("sender keys")

    return _timed(body)


# --- vodozemac (Rust) ---------------------------------------------------------------------


def load_vodozemac() -> tuple[Any, str]:
    """The ``vodozemac`` module, or why not."""
    try:
        import vodozemac
    except ImportError as exc:
        return None, f"vodozemac not installed ({exc}); pip install vodozemac"
    return vodozemac, "vodozemac (Rust, PyPI binding) Olm and Megolm"


def _olm_pair(vodozemac: Any) -> tuple[Any, Any]:
    alice, bob = vodozemac.Account(), vodozemac.Account()
    bob.generate_one_time_keys(1)
    one_time_key = next(iter(bob.one_time_keys.values()))
    alice_session = alice.create_outbound_session(bob.curve25519_key, one_time_key)
    first = alice_session.encrypt(b"")
    bob_session, _ = bob.create_inbound_session(alice.curve25519_key, first.to_pre_key())
    alice_session.decrypt(bob_session.encrypt(b""))  # established: no pre-key messages
    return alice_session, bob_session


def vodozemac_runs(vodozemac: Any) -> tuple[Run, Run, Run, Run]:
    def burst(n: int) -> float:
        alice, bob = _olm_pair(vodozemac)

        def body() -> None:
            for _ in range(n):
                if bob.decrypt(alice.encrypt(PLAINTEXT)) != PLAINTEXT:
                    raise AssertionError("vodozemac burst")

        return _timed(body)

    def ping_pong(n: int) -> float:
        alice, bob = _olm_pair(vodozemac)

        def body() -> None:
            for index in range(n):
                sender, receiver = (bob, alice) if index % 2 else (alice, bob)
                if receiver.decrypt(sender.encrypt(PLAINTEXT)) != PLAINTEXT:
                    raise AssertionError("vodozemac ping-pong")

        return _timed(body)

    def megolm(n: int) -> float:
        outbound = vodozemac.GroupSession()
        inbound = vodozemac.InboundGroupSession(outbound.session_key)

        def body() -> None:
            for _ in range(n):
                if inbound.decrypt(outbound.encrypt(PLAINTEXT)).plaintext != PLAINTEXT:
                    raise AssertionError("vodozemac megolm")

        return _timed(body)

    def ed25519(n: int) -> float:
        """vodozemac's Ed25519 (curve25519-dalek), sign + verify, through its Python binding."""
        account = vodozemac.Account()
        public_key = account.ed25519_key

        def body() -> None:
            for _ in range(n):
                public_key.verify_signature(PLAINTEXT, account.sign(PLAINTEXT))

        return _timed(body)

    return burst, ping_pong, megolm, ed25519


# --- the floor of bare primitives -------------------------------------------------------


def _floor_message(chain_key: bytes, ad: bytes) -> bytes:
    mac = crypto_hmac.HMAC(chain_key, hashes.SHA256())
    mac.update(b"\x02")
    next_chain = mac.finalize()
    mac = crypto_hmac.HMAC(chain_key, hashes.SHA256())
    mac.update(b"\x01")
    message_key = mac.finalize()
    okm = HKDF(hashes.SHA256(), 44, bytes(32), b"omega/ratchet/message-key/v1").derive(message_key)
    aead = AESGCM(okm[:32])
    if aead.decrypt(okm[32:], aead.encrypt(okm[32:], PLAINTEXT, ad), ad) != PLAINTEXT:
        raise AssertionError("floor")
    return next_chain


def floor_burst(n: int) -> float:
    ad = bytes(176)

    def body() -> None:
        chain_key = bytes(32)
        for _ in range(n):
            chain_key = _floor_message(chain_key, ad)

    return _timed(body)


def floor_ping_pong(n: int) -> float:
    ad = bytes(176)
    peer = X25519PrivateKey.generate().public_key()

    def body() -> None:
        chain_key = root_key = bytes(32)
        for _ in range(n):
            private = X25519PrivateKey.generate()
            private.public_key()
            shared = private.exchange(peer)
            shared = private.exchange(peer)  # the receiver's side of the same step
            for _ in range(2):
                okm = HKDF(hashes.SHA256(), 64, root_key, b"omega/ratchet/root/v1").derive(shared)
            root_key, chain_key = okm[:32], okm[32:]
            chain_key = _floor_message(chain_key, ad)

    return _timed(body)


# --- the baselines from PyPI ------------------------------------------------------------


def load_baselines() -> tuple[dict[str, Any] | None, str]:
    """The PyPI ``doubleratchet`` and ``x3dh`` classes configured like Omega, or why not."""
    try:
        from doubleratchet import aead as dr_aead
        from doubleratchet import double_ratchet as dr
        from doubleratchet.recommended import HashFunction as DRHash
        from doubleratchet.recommended import aead_aes_hmac, kdf_hkdf, kdf_separate_hmacs
        from doubleratchet.recommended.diffie_hellman_ratchet_curve25519 import (
            DiffieHellmanRatchet,
        )
        from x3dh import IdentityKeyFormat
        from x3dh import base_state as x3dh_state
        from x3dh.crypto_provider import HashFunction as X3DHHash
    except ImportError as exc:
        return None, f"baseline packages not installed ({exc}); pip install doubleratchet x3dh"

    class RootKDF(kdf_hkdf.KDF):
        @staticmethod
        def _get_hash_function() -> DRHash:
            return DRHash.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"omega/ratchet/root/v1"

    class ChainKDF(kdf_separate_hmacs.KDF):
        @staticmethod
        def _get_hash_function() -> DRHash:
            return DRHash.SHA_256

    class AesGcm(dr_aead.AEAD):
        """AES-256-GCM under an HKDF expansion of the message key, as Omega does."""

        @staticmethod
        def _material(key: bytes) -> tuple[AESGCM, bytes]:
            okm = HKDF(hashes.SHA256(), 44, bytes(32), b"omega/ratchet/message-key/v1").derive(key)
            return AESGCM(okm[:32]), okm[32:]

        @staticmethod
        async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
            aead, nonce = AesGcm._material(key)
            return aead.encrypt(nonce, plaintext, associated_data)

        @staticmethod
        async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
            aead, nonce = AesGcm._material(key)
            return aead.decrypt(nonce, ciphertext, associated_data)

    class AesCbcHmac(aead_aes_hmac.AEAD):
        @staticmethod
        def _get_hash_function() -> DRHash:
            return DRHash.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"omega/ratchet/message-key/v1"

    class Ratchet(dr.DoubleRatchet):
        @staticmethod
        def _build_associated_data(associated_data: bytes, header: Any) -> bytes:
            return (
                associated_data
                + header.ratchet_pub
                + header.previous_sending_chain_length.to_bytes(4, "big")
                + header.sending_chain_length.to_bytes(4, "big")
            )

    class State(x3dh_state.BaseState):
        @staticmethod
        def _encode_public_key(key_format: Any, pub: bytes) -> bytes:
            return pub

    settings = {
        "diffie_hellman_ratchet_class": DiffieHellmanRatchet,
        "root_chain_kdf": RootKDF,
        "message_chain_kdf": ChainKDF,
        "message_chain_constant": b"\x02\x01",
        "dos_protection_threshold": 1000,
        "max_num_skipped_message_keys": 2000,
    }
    baselines = {
        "Ratchet": Ratchet,
        "State": State,
        "aead": {"gcm": AesGcm, "cbc_hmac": AesCbcHmac},
        "settings": settings,
        "x3dh": (IdentityKeyFormat.ED_25519, X3DHHash.SHA_256),
    }
    return baselines, "doubleratchet and x3dh from PyPI"


async def _dr_pair(baselines: dict[str, Any], aead: Any) -> tuple[Any, Any]:
    ratchet_class = baselines["Ratchet"]
    bob_private = X25519PrivateKey.generate()
    bob_public = bob_private.public_key().public_bytes_raw()
    settings = {**baselines["settings"], "aead": aead}
    alice, first = await ratchet_class.encrypt_initial_message(
        shared_secret=bytes(32),
        recipient_ratchet_pub=bob_public,
        message=b"",
        associated_data=bytes(128),
        **settings,
    )
    bob, _ = await ratchet_class.decrypt_initial_message(
        shared_secret=bytes(32),
        own_ratchet_priv=bob_private.private_bytes_raw(),
        message=first,
        associated_data=bytes(128),
        **settings,
    )
    reply = await bob.encrypt_message(b"", bytes(128))
    await alice.decrypt_message(reply, bytes(128))
    return alice, bob


def doubleratchet_runs(baselines: dict[str, Any], aead_name: str) -> tuple[Run, Run]:
    aead = baselines["aead"][aead_name]
    ad = bytes(128)

    def burst(n: int) -> float:
        async def main() -> float:
            alice, bob = await _dr_pair(baselines, aead)
            start = time.thread_time()
            for _ in range(n):
                message = await alice.encrypt_message(PLAINTEXT, ad)
                if await bob.decrypt_message(message, ad) != PLAINTEXT:
                    raise AssertionError("doubleratchet burst")
            return time.thread_time() - start

        return _in_loop(main)

    def ping_pong(n: int) -> float:
        async def main() -> float:
            alice, bob = await _dr_pair(baselines, aead)
            start = time.thread_time()
            for index in range(n):
                sender, receiver = (bob, alice) if index % 2 else (alice, bob)
                message = await sender.encrypt_message(PLAINTEXT, ad)
                if await receiver.decrypt_message(message, ad) != PLAINTEXT:
                    raise AssertionError("doubleratchet ping-pong")
            return time.thread_time() - start

        return _in_loop(main)

    return burst, ping_pong


def baseline_setup_run(baselines: dict[str, Any]) -> Run:
    ratchet_class, state_class = baselines["Ratchet"], baselines["State"]
    settings = {**baselines["settings"], "aead": baselines["aead"]["gcm"]}
    key_format, hash_function = baselines["x3dh"]

    def setup(n: int) -> float:
        async def main() -> float:
            alice = state_class.create(key_format, hash_function, b"omega/x3dh/v1")
            bob = state_class.create(key_format, hash_function, b"omega/x3dh/v1")
            bob.generate_pre_keys(100)
            bundle = bob.bundle
            start = time.thread_time()
            for _ in range(n):
                secret, ad, header = await alice.get_shared_secret_active(bundle)
                _, first = await ratchet_class.encrypt_initial_message(
                    shared_secret=secret,
                    recipient_ratchet_pub=bundle.signed_pre_key,
                    message=PLAINTEXT,
                    associated_data=ad,
                    **settings,
                )
                secret, ad, spk = await bob.get_shared_secret_passive(header)
                _, plaintext = await ratchet_class.decrypt_initial_message(
                    shared_secret=secret,
                    own_ratchet_priv=spk.priv,
                    message=first,
                    associated_data=ad,
                    **settings,
                )
                if plaintext != PLAINTEXT:
                    raise AssertionError("baseline setup")
            return time.thread_time() - start

        return _in_loop(main)

    return setup


def _in_loop(main: Callable[[], Any]) -> float:
    gc.collect()
    gc.disable()
    try:
        elapsed: float = asyncio.run(main())
    finally:
        gc.enable()
    return elapsed


# --- measuring and reporting ------------------------------------------------------------


def measure(runs: dict[str, tuple[Run, int]], repeats: int) -> dict[str, float]:
    """Median microseconds per operation of each run; interleaved so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, count) in runs.items():
            samples[name].append(run(count) / count * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and runs")
    args = parser.parse_args()
    scale, repeats = (1, 7) if args.quick else (5, 9)
    baselines, baseline_note = load_baselines()
    vodozemac, vodozemac_note = load_vodozemac()

    runs: dict[str, tuple[Run, int]] = {
        "burst/omega": (omega_burst, 1000 * scale),
        "burst/floor": (floor_burst, 2000 * scale),
        "ping_pong/omega": (omega_ping_pong, 300 * scale),
        "ping_pong/floor": (floor_ping_pong, 300 * scale),
        "setup/omega": (omega_setup, 40 * scale),
        "ed25519_sign_verify": (ed25519_sign_verify, 1000 * scale),
        "ed25519_sign_verify_checked": (ed25519_sign_verify_checked, 1000 * scale),
        "sender_keys/omega": (sender_keys, 1000 * scale),
        "state/save": (omega_state_save, 1000 * scale),
        "state/load": (omega_state_load, 300 * scale),
    }
    if baselines is not None:
        gcm_burst, gcm_ping_pong = doubleratchet_runs(baselines, "gcm")
        cbc_burst, cbc_ping_pong = doubleratchet_runs(baselines, "cbc_hmac")
        runs["burst/doubleratchet"] = (gcm_burst, 300 * scale)
        runs["burst/doubleratchet_cbc_hmac"] = (cbc_burst, 300 * scale)
        runs["ping_pong/doubleratchet"] = (gcm_ping_pong, 150 * scale)
        runs["ping_pong/doubleratchet_cbc_hmac"] = (cbc_ping_pong, 150 * scale)
        runs["setup/x3dh+doubleratchet"] = (baseline_setup_run(baselines), 40 * scale)
    if vodozemac is not None:
        olm_burst, olm_ping_pong, megolm, dalek = vodozemac_runs(vodozemac)
        runs["burst/vodozemac"] = (olm_burst, 1000 * scale)
        runs["ping_pong/vodozemac"] = (olm_ping_pong, 300 * scale)
        runs["sender_keys/vodozemac_megolm"] = (megolm, 1000 * scale)
        runs["ed25519_sign_verify_vodozemac"] = (dalek, 1000 * scale)
    micros = measure(runs, repeats)
    report(micros, baselines is not None, f"{baseline_note}; {vodozemac_note}", args.quick, repeats)


# Targets of issue 4, as ratios measured in one run: (ratio name, bound, "max" or "min").
TARGETS = (
    ("burst_omega_over_floor", 1.3, "max"),
    ("burst_omega_speedup_over_vodozemac", 2.0, "min"),
    ("burst_omega_speedup_over_doubleratchet", 12.0, "min"),
    ("ping_pong_omega_speedup_over_vodozemac", 1.0, "min"),
    ("ping_pong_omega_speedup_over_doubleratchet", 3.0, "min"),
    ("sender_keys_omega_speedup_over_vodozemac_megolm", 1.0, "min"),
)


def _ratio_column(value: float, reference: float | None) -> str:
    return f"{value / reference:11.2f}x" if reference else f"{'':>12}"


def report(micros: dict[str, float], baselines: bool, note: str, quick: bool, repeats: int) -> None:
    status = omega.accelerator_status()
    print(
        f"Omega ratchet benchmark, Python {platform.python_version()}, {platform.machine()}, "
        f"256-byte messages, median of {repeats} runs, accelerators: {status}"
    )
    print(f"baselines: {note}\n")
    ratios: dict[str, float] = {}
    header = (
        f"{'workload':<34} {'µs/op':>9} {'ops/s':>10} {'/floor':>8} "
        f"{'/vodozemac':>12} {'/doubleratch.':>12}"
    )
    print(header)
    print("-" * len(header))
    for workload, vodozemac, doubleratchet in (
        ("burst", "vodozemac", "doubleratchet"),
        ("ping_pong", "vodozemac", "doubleratchet"),
        ("setup", None, "x3dh+doubleratchet"),
        ("sender_keys", "vodozemac_megolm", None),
    ):
        floor = micros.get(f"{workload}/floor")
        rust = micros.get(f"{workload}/{vodozemac}")
        python = micros.get(f"{workload}/{doubleratchet}")
        for name, value in sorted(micros.items()):
            if not name.startswith(workload + "/"):
                continue
            over_floor = f"{value / floor:7.2f}x" if floor else f"{'':>8}"
            print(
                f"{name:<34} {value:>9.1f} {1e6 / value:>10,.0f} {over_floor} "
                f"{_ratio_column(value, rust)} {_ratio_column(value, python)}"
            )
        ours = micros[f"{workload}/omega"]
        if floor:
            ratios[f"{workload}_omega_over_floor"] = ours / floor
        if rust:
            ratios[f"{workload}_omega_speedup_over_{vodozemac}"] = rust / ours
        if python:
            ratios[f"{workload}_omega_speedup_over_doubleratchet"] = python / ours
    for name in (
        "state/save",
        "state/load",
        "ed25519_sign_verify",
        "ed25519_sign_verify_checked",
        "ed25519_sign_verify_vodozemac",
    ):
        value = micros.get(name)
        if value is not None:
            print(f"{name:<34} {value:>9.1f} {1e6 / value:>10,.0f}")
    ratios["ed25519_over_floor_message"] = micros["ed25519_sign_verify"] / micros["burst/floor"]
    ratios["ed25519_over_sender_keys_message"] = (
        micros["ed25519_sign_verify"] / micros["sender_keys/omega"]
    )
    ratios["sender_keys_rest_over_burst"] = (
        micros["sender_keys/omega"] - micros["ed25519_sign_verify"]
    ) / micros["burst/omega"]
    megolm = micros.get("sender_keys/vodozemac_megolm")
    if megolm:
        ratios["ed25519_over_megolm_message"] = micros["ed25519_sign_verify"] / megolm
    dalek = micros.get("ed25519_sign_verify_vodozemac")
    if dalek:
        ratios["ed25519_libsodium_over_vodozemac"] = micros["ed25519_sign_verify"] / dalek
    print()
    print(
        f"Ed25519 sign+verify alone = {ratios['ed25519_over_floor_message']:.1f}x the floor's "
        f"message and {ratios['ed25519_over_sender_keys_message']:.0%} of a Sender Keys message"
        + (
            f"; {ratios['ed25519_over_megolm_message']:.2f}x a whole Megolm message"
            if megolm
            else ""
        )
        + (
            f"; libsodium's sign+verify = {ratios['ed25519_libsodium_over_vodozemac']:.2f}x "
            "vodozemac's (curve25519-dalek)"
            if dalek
            else ""
        )
    )
    print(
        "Sender Keys without the signature = "
        f"{ratios['sender_keys_rest_over_burst']:.2f}x a Double Ratchet burst message"
    )
    verdicts: dict[str, bool] = {}
    for name, bound, kind in TARGETS:
        value = ratios.get(name)
        if value is None:
            print(f"target {name} {'<=' if kind == 'max' else '>='} {bound}: not measured")
            continue
        met = value <= bound if kind == "max" else value >= bound
        verdicts[name] = met
        sign = "<=" if kind == "max" else ">="
        print(f"target {name} {sign} {bound}: {value:.2f} {'met' if met else 'NOT met'}")
    print(
        json.dumps(
            {
                "benchmark": "ratchet",
                "python": platform.python_version(),
                "quick": quick,
                "repeats": repeats,
                "statistic": "median",
                "unit": "microseconds per operation (encrypt+decrypt per message)",
                "baselines": note,
                "accelerators": status,
                "micros": micros,
                "ratios": ratios,
                "targets_met": verdicts,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
