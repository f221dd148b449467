"""Per-target counts and latencies of fuzzed inputs (one module object, imported by conftest and the tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

STATS: dict[str, dict[str, Any]] = {}


def timed(name: str, fn: Callable[[], Any]) -> Any:
    """Run one fuzzed input, recording its latency and whether it failed (then re-raise)."""
    entry = STATS.setdefault(name, {"tried": 0, "failures": 0, "ms": []})
    entry["tried"] += 1
    started = time.perf_counter()
    try:
        return fn()
    except BaseException:
        entry["failures"] += 1
        raise
    finally:
        entry["ms"].append((time.perf_counter() - started) * 1000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0
