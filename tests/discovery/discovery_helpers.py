"""Constants shared by the discovery tests."""

from __future__ import annotations

from omega.testing.discovery import START_TIME

NOW_MS = int(START_TIME * 1000)
HOUR_MS = 3_600_000
