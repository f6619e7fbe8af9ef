"""Write the fixtures of the layout before the group session split (run with that Omega).

They were made with Omega at commit 0eb27f3 (the last one storing a group
session as one ``GroupSessionState`` blob of version 1)::

    git archive 0eb27f3 src tests/groups/group_helpers.py | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src:/tmp/old/tests/groups python make_legacy_fixtures.py

* ``group_session_v1_member1.bin``: user 1's session in a group of users 0,
  1 and 2 (group_helpers), after messages from 0 and 2, a removal of 2 by 0
  and 0's rekey; ``group_session_v1_member0.bin``: user 0's session then.
* ``group_message_v1_in_flight.bin``: a message 0 sent under its key of
  before the removal, never delivered (stale for member 1).
* ``key_store_v1.db``: an SQLite key store of schema version 1 encrypted with
  ``b"K" * 32`` holding the member-1 blob as its group state, and a session.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import anyio
from group_helpers import NOW, device, new_group, user

from omega.groups import GroupSession
from omega.storage import SQLiteKeyStore
from omega.testing.random import SeededRandom

HERE = Path(__file__).parent


def sessions() -> dict[int, GroupSession]:
    log, _ = new_group(3)
    made = {
        index: GroupSession.start(
            log if index == 0 else copy.deepcopy(log),
            device(index),
            rng=SeededRandom(b"%d" % index),
        )
        for index in range(3)
    }
    for sender, session in made.items():
        rekey = session.rekey_all()
        for index, other in made.items():
            if user(index) in rekey.recipients:
                other.add_distribution(user(sender), device(sender).device_key, rekey.distribution)
    for sender in (0, 2, 0):
        ciphertext = made[sender].encrypt(b"before the split")
        made[1].decrypt(user(sender), device(sender).device_key, ciphertext)
    in_flight = made[0].encrypt(b"in flight")  # never delivered: stale after the removal
    (HERE / "group_message_v1_in_flight.bin").write_bytes(in_flight)
    removal = made[0].log.remove_member(device(0), user(2), now=NOW)
    rekey = made[0].after_local_change(rng=SeededRandom(b"r"))
    made[1].receive_operation(removal, rng=SeededRandom(b"r1"))
    assert rekey is not None
    made[1].add_distribution(user(0), device(0).device_key, rekey.distribution)
    return made


async def main() -> None:
    made = sessions()
    member1 = made[1].to_bytes()
    (HERE / "group_session_v1_member1.bin").write_bytes(member1)
    (HERE / "group_session_v1_member0.bin").write_bytes(made[0].to_bytes())
    path = HERE / "key_store_v1.db"
    path.unlink(missing_ok=True)
    store = await SQLiteKeyStore.open(path, encryption_key=b"K" * 32)
    async with store, store.transaction() as tx:
        await tx.save_group_state(made[1].log.group_id, member1)
        await tx.save_session(device(0).device_key, b"a pairwise session")
    print("written", len(member1), file=sys.stderr)


if __name__ == "__main__":
    anyio.run(main)
