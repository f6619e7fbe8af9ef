"""Configuration of a group log."""

from __future__ import annotations

from dataclasses import dataclass

from omega.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_MEMBERS", "MAX_MEMBERS_LIMIT", "GroupConfig"]

DEFAULT_MAX_MEMBERS = 256
"""The member limit of a new group (the product plan's number)."""

MAX_MEMBERS_LIMIT = 100_000
"""The largest member limit any configuration may name."""


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Bounds of one group log; validated on construction."""

    max_members: int = DEFAULT_MAX_MEMBERS
    """Member limit written into the genesis of groups this device creates."""
    max_members_accepted: int = 1000
    """Largest member limit accepted in a received genesis (Signal's cap by default)."""
    max_operations: int = 100_000
    """Most operations one log holds; more are refused (bounds memory per group)."""
    max_pending: int = 1024
    """Most operations held while waiting for their parents."""
    max_batch_bytes: int = 16 * 1024 * 1024
    """Largest encoded ``GroupOperationBatch`` accepted (a 1000-member log is about 0.5 MB)."""

    def __post_init__(self) -> None:
        for name in (
            "max_members",
            "max_members_accepted",
            "max_operations",
            "max_pending",
            "max_batch_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
        if self.max_members_accepted > MAX_MEMBERS_LIMIT:
            raise ConfigurationError(f"max_members_accepted must be at most {MAX_MEMBERS_LIMIT}")
        if self.max_members > self.max_members_accepted:
            raise ConfigurationError("max_members must not exceed max_members_accepted")
