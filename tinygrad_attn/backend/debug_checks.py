"""The debug switch for checks that read a device's array values.

A check such as "every id lies in [0, V)" reads the ids on the host. On the CPU that is
free; on a GPU it is a synchronisation: the host waits until every queued kernel has
run, so it cannot queue the next ones ahead. A training step keeps such checks off on a
GPU unless asked: `set_debug_checks(True)`, or the environment variable
TINYGRAD_ATTN_DEBUG_CHECKS=1, read at first use.
"""
from __future__ import annotations

import os

ENV_VAR = "TINYGRAD_ATTN_DEBUG_CHECKS"
_enabled: bool | None = None  # None: not decided yet, the environment decides at first use


def set_debug_checks(enabled: bool = True) -> None:
    """Check values (ids in range, ...) on every device, at the cost of a GPU synchronisation each."""
    global _enabled
    _enabled = bool(enabled)


def debug_checks_enabled() -> bool:
    global _enabled
    if _enabled is None:
        _enabled = os.environ.get(ENV_VAR, "0").strip().lower() not in ("", "0", "false", "no", "off")
    return _enabled
