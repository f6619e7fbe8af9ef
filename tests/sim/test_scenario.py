"""Scenario files (TOML and Python)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.errors import ConfigurationError
from omega.sim import Distribution, SimConfig
from omega.sim.scenario import config_from_dict, load_scenario

FULL = """
peers = 30
duration = 60
drain = 120
seed = 5
store = true
connect_timeout = 2
direct_attempts = 3
ack_timeout = 10
relay = true
nat_fraction = 0.3
secure_channel = false
prekey_fetch = false
mailbox_poll_interval = 10

[link]
latency = { kind = "lognormal", mean = 60, stddev = 30 }
jitter = 5
bandwidth = 1e6
loss = 0.01

[store_link]
latency = { kind = "uniform", low = 10, high = 20 }

[relay_link]
latency = 15

[churn]
fraction = 0.25
mean_online = 100
mean_offline = 50

[[partitions]]
start = 10
end = 20
peers = [0, "5-7"]
store = true
relay = true

[[offline]]
peer = 3
start = 0
end = 30

[workload]
rate = 2
graph = "ring"
degree = 4
message_size = 100
[[workload.bursts]]
start = 30
duration = 5
rate = 10
[[workload.sends]]
time = 1
sender = 0
recipient = 1

[workload.groups]
count = 2
min_size = 3
max_size = 4
rate = 0.5
removal_fraction = 1
[[workload.groups.groups]]
members = [9, "2-4", 1]
rate = 1
[[workload.groups.sends]]
time = 5
group = 0
sender = 3
[[workload.groups.removals]]
time = 20
group = 0
member = 1
"""


def test_a_full_toml_scenario(tmp_path: Path) -> None:
    path = tmp_path / "full.toml"
    path.write_text(FULL)
    config = load_scenario(path)
    assert config.peers == 30
    assert config.direct_attempts == 3
    assert config.link.latency == Distribution(kind="lognormal", mean=60.0, stddev=30.0)
    assert config.link.jitter == Distribution(kind="constant", mean=5.0)
    assert config.store_link.latency.kind == "uniform"
    assert config.relay
    assert config.nat_fraction == 0.3
    assert config.relay_link.latency.mean == 15.0
    assert config.partitions[0].relay
    assert config.churn.fraction == 0.25
    assert config.partitions[0].peers == frozenset({0, 5, 6, 7})
    assert config.partitions[0].store
    assert config.offline[0].peer == 3
    assert config.workload.graph == "ring"
    assert config.workload.bursts[0].rate == 10
    assert config.workload.sends[0].recipient == 1
    assert not config.secure_channel
    assert not config.prekey_fetch
    assert config.mailbox_poll_interval == 10.0
    groups = config.workload.groups
    assert groups.total == 3
    assert groups.groups[0].members == (9, 2, 3, 4, 1)  # the owner stays first
    assert groups.sends[0].sender == 3
    assert groups.removals[0].member == 1
    assert groups.removal_fraction == 1.0


def test_an_empty_toml_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    assert load_scenario(path) == SimConfig()


@pytest.mark.parametrize(
    "data",
    [
        {"colour": "blue"},
        {"link": {"latncy": 3}},
        {"link": 3},
        {"link": {"latency": {"kind": "constant", "mena": 3}}},
        {"partitions": [{"start": 0, "end": 1, "peers": ["a-b"]}]},
        {"partitions": [{"start": 0, "end": 1, "peers": [1.5]}]},
        {"partitions": [{"start": 0, "end": 1, "peers": 3}]},
        {"partitions": {"start": 0}},
        {"offline": [{"peer": 0, "start": 0, "end": 1, "why": "x"}]},
        {"workload": {"rate": 1, "unknown": 2}},
        {"workload": {"sends": [{"time": 0, "sender": 0}]}},
        {"workload": {"groups": {"size": 3}}},
        {"workload": {"groups": {"groups": [{"members": 3}]}}},
        {"workload": {"groups": {"groups": [{"members": [0, 1], "colour": 1}]}}},
        {"peers": "many"},
    ],
)
def test_bad_scenarios_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        config_from_dict(data)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no scenario file"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("peers = = 3")
    with pytest.raises(ConfigurationError, match="TOML"):
        load_scenario(bad)
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(ConfigurationError, match="SCENARIO"):
        load_scenario(empty)


def test_python_scenarios(tmp_path: Path) -> None:
    constant = tmp_path / "constant.py"
    constant.write_text("from omega.sim import SimConfig\nSCENARIO = SimConfig(peers=7)\n")
    assert load_scenario(constant).peers == 7
    function = tmp_path / "function.py"
    function.write_text(
        "from omega.sim import SimConfig\ndef scenario():\n    return SimConfig(peers=9)\n"
    )
    assert load_scenario(function).peers == 9
