"""Scenario files: a TOML file or a small Python file describing a :class:`SimConfig`.

TOML (every table and key optional; unknown keys are refused)::

    peers = 100
    duration = 600          # seconds of traffic
    drain = 3600            # seconds more for messages in flight
    seed = 1
    relay = true            # a relay node
    nat_fraction = 0.3      # peers reachable only through the relay

    [link]                  # links between peers
    latency = { kind = "lognormal", mean = 60, stddev = 30 }
    jitter = { kind = "exponential", mean = 5 }
    bandwidth = 10e6
    loss = 0.01

    [churn]
    fraction = 0.2
    mean_online = 600
    mean_offline = 300

    [[partitions]]
    start = 100
    end = 200
    peers = [0, 1, "10-19"]  # numbers and inclusive ranges
    store = false
    relay = false

    [[offline]]
    peer = 3
    start = 0
    end = 500

    [workload]
    rate = 5
    graph = "random"
    degree = 8
    [[workload.bursts]]
    start = 300
    duration = 10
    rate = 100
    [[workload.sends]]
    time = 1
    sender = 0
    recipient = 1

    [workload.groups]       # group traffic (docs/simulation.md, "Groups")
    count = 20              # random groups of min_size..max_size members
    min_size = 3
    max_size = 8
    rate = 0.1              # messages per second in each random group
    removal_fraction = 0.5  # groups whose owner removes one member mid-run
    [[workload.groups.groups]]
    members = [0, 1, "2-5"] # exact groups, owner first
    rate = 1
    [[workload.groups.sends]]
    time = 5
    group = 0
    sender = 1
    [[workload.groups.removals]]
    time = 60
    group = 0
    member = 3

A Python scenario is a module that defines ``SCENARIO``, a
:class:`~omega.sim.config.SimConfig` (or ``scenario()`` returning one).
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omega.errors import ConfigurationError
from omega.sim.config import (
    Burst,
    ChurnConfig,
    Distribution,
    GroupRemoval,
    GroupSend,
    GroupSpec,
    GroupWorkload,
    LinkConfig,
    OfflineWindow,
    Partition,
    ScheduledSend,
    SimConfig,
    WorkloadConfig,
)

__all__ = ["config_from_dict", "load_scenario"]

_TOP_SCALARS = (
    "peers",
    "duration",
    "drain",
    "seed",
    "store",
    "connect_timeout",
    "direct_attempts",
    "ack_timeout",
    "relay",
    "nat_fraction",
    "secure_channel",
    "prekey_fetch",
    "mailbox_poll_interval",
)


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a table")
    return value


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigurationError(f"unknown key(s) in {where}: {', '.join(unknown)}")


def _build(cls: type[Any], table: Mapping[str, Any], where: str) -> Any:
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigurationError(f"bad {where}: {exc}") from None


def _distribution(value: object, where: str) -> Distribution:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Distribution(kind="constant", mean=float(value))
    table = _table(value, where)
    _check_keys(table, {"kind", "mean", "stddev", "low", "high"}, where)
    return _build(Distribution, table, where)  # type: ignore[no-any-return]


def _link(value: object, where: str) -> LinkConfig:
    table = dict(_table(value, where))
    _check_keys(table, {"latency", "jitter", "bandwidth", "loss"}, where)
    for key in ("latency", "jitter"):
        if key in table:
            table[key] = _distribution(table[key], f"{where}.{key}")
    return _build(LinkConfig, table, where)  # type: ignore[no-any-return]


def _peer_set(value: object, where: str) -> frozenset[int]:
    if not isinstance(value, list):
        raise ConfigurationError(f"{where} must be a list of peer numbers or 'a-b' ranges")
    peers: set[int] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            peers.add(item)
        elif isinstance(item, str) and item.count("-") == 1:
            low, high = item.split("-")
            try:
                peers.update(range(int(low), int(high) + 1))
            except ValueError:
                raise ConfigurationError(f"bad range {item!r} in {where}") from None
        else:
            raise ConfigurationError(f"bad peer {item!r} in {where}")
    return frozenset(peers)


def _list(value: object, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise ConfigurationError(f"{where} must be an array of tables")
    return [_table(item, where) for item in value]


def _groups(value: object) -> GroupWorkload:
    table = dict(_table(value, "workload.groups"))
    _check_keys(
        table,
        {
            "count",
            "min_size",
            "max_size",
            "rate",
            "message_size",
            "removal_fraction",
            "groups",
            "sends",
            "removals",
        },
        "workload.groups",
    )
    specs = []
    for item in _list(table.get("groups", []), "workload.groups.groups"):
        spec = dict(item)
        members = spec.get("members", [])
        if not isinstance(members, list):
            raise ConfigurationError("workload.groups.groups.members must be a list")
        expanded: list[int] = []
        for member in members:  # keeps the order: the first member is the owner
            expanded.extend(sorted(_peer_set([member], "workload.groups.groups.members")))
        spec["members"] = tuple(expanded)
        specs.append(_build(GroupSpec, spec, "workload.groups.groups"))
    table["groups"] = tuple(specs)
    table["sends"] = tuple(
        _build(GroupSend, item, "workload.groups.sends")
        for item in _list(table.get("sends", []), "workload.groups.sends")
    )
    table["removals"] = tuple(
        _build(GroupRemoval, item, "workload.groups.removals")
        for item in _list(table.get("removals", []), "workload.groups.removals")
    )
    return _build(GroupWorkload, table, "workload.groups")  # type: ignore[no-any-return]


def _workload(value: object) -> WorkloadConfig:
    table = dict(_table(value, "workload"))
    _check_keys(
        table,
        {"rate", "graph", "degree", "message_size", "bursts", "sends", "max_messages", "groups"},
        "workload",
    )
    if "groups" in table:
        table["groups"] = _groups(table["groups"])
    table["bursts"] = tuple(
        _build(Burst, item, "workload.bursts")
        for item in _list(table.get("bursts", []), "workload.bursts")
    )
    table["sends"] = tuple(
        _build(ScheduledSend, item, "workload.sends")
        for item in _list(table.get("sends", []), "workload.sends")
    )
    return _build(WorkloadConfig, table, "workload")  # type: ignore[no-any-return]


def config_from_dict(data: Mapping[str, Any]) -> SimConfig:
    """Build a :class:`SimConfig` from parsed TOML (see the module docstring).

    Raises :class:`~omega.errors.ConfigurationError` for unknown keys and bad values.
    """
    tables = {"link", "store_link", "relay_link", "churn", "offline", "partitions", "workload"}
    _check_keys(data, set(_TOP_SCALARS) | tables, "the scenario")
    fields: dict[str, Any] = {key: data[key] for key in _TOP_SCALARS if key in data}
    for key in ("link", "store_link", "relay_link"):
        if key in data:
            fields[key] = _link(data[key], key)
    if "churn" in data:
        fields["churn"] = _build(ChurnConfig, _table(data["churn"], "churn"), "churn")
    fields["offline"] = tuple(
        _build(OfflineWindow, item, "offline") for item in _list(data.get("offline", []), "offline")
    )
    partitions = []
    for item in _list(data.get("partitions", []), "partitions"):
        table = dict(item)
        table["peers"] = _peer_set(table.get("peers", []), "partitions.peers")
        partitions.append(_build(Partition, table, "partitions"))
    fields["partitions"] = tuple(partitions)
    if "workload" in data:
        fields["workload"] = _workload(data["workload"])
    return _build(SimConfig, fields, "scenario")  # type: ignore[no-any-return]


def load_scenario(path: str | Path) -> SimConfig:
    """Read a scenario from a ``.toml`` file or a ``.py`` file.

    Raises :class:`~omega.errors.ConfigurationError` for a missing or
    malformed file, or a Python file without ``SCENARIO``/``scenario()``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"no scenario file {str(path)!r}")
    if path.suffix == ".py":
        return _load_python(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data)


def _load_python(path: Path) -> SimConfig:
    spec = importlib.util.spec_from_file_location(f"omega_sim_scenario_{path.stem}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise ConfigurationError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scenario = getattr(module, "SCENARIO", None)
    if scenario is None and callable(getattr(module, "scenario", None)):
        scenario = module.scenario()
    if not isinstance(scenario, SimConfig):
        raise ConfigurationError(f"{path} must define SCENARIO (a SimConfig) or scenario()")
    return scenario
