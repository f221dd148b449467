"""Robustness campaign: hypothesis profiles, shared fixtures and the figures `make fuzz` prints.

Profiles: "ci" (default, bounded: part of `make test`) and "fuzz" (`make fuzz`: many more examples). Every
property test records how many inputs it tried, how many failed and how long each took; the session ends
with a summary (inputs tried, failures, p50/p99 latency), and `make fuzz` also writes it to FUZZ_STATS.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from assistant import Assistant, Settings
from assistant.index.builder import build_index
from tests.conftest import KeywordEmbedder, write_small_corpus
from tests.robustness.fuzzstats import STATS
from tests.robustness.fuzzstats import percentile as _percentile

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.register_profile(
    "fuzz", max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not STATS:
        return
    rows = []
    for name, entry in sorted(STATS.items()):
        rows.append({"target": name, "tried": entry["tried"], "failures": entry["failures"],
                     "p50_ms": round(_percentile(entry["ms"], 0.5), 2),
                     "p99_ms": round(_percentile(entry["ms"], 0.99), 2)})  # fmt: skip
    everything = [ms for e in STATS.values() for ms in e["ms"]]
    total = {
        "target": "TOTAL",
        "tried": sum(r["tried"] for r in rows),
        "failures": sum(r["failures"] for r in rows),
        "p50_ms": round(_percentile(everything, 0.5), 2),
        "p99_ms": round(_percentile(everything, 0.99), 2),
    }
    terminalreporter.write_sep("-", "fuzzing: inputs tried / failures / latency")
    for row in [*rows, total]:
        terminalreporter.write_line(
            f"{row['target']:<28} tried {row['tried']:>6}  failures {row['failures']:>3}  "
            f"p50 {row['p50_ms']:>8.2f} ms  p99 {row['p99_ms']:>8.2f} ms"
        )
    out = os.environ.get("FUZZ_STATS")
    if out:
        Path(out).write_text(json.dumps({"profile": os.environ.get("HYPOTHESIS_PROFILE", "ci"),
                                         "targets": rows, "total": total}, indent=2) + "\n")  # fmt: skip


@pytest.fixture(scope="module")
def small_assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    """An Assistant over a two-document corpus and the keyword embedder, built once per module."""
    root = tmp_path_factory.mktemp("robust")
    corpus = write_small_corpus(root / "corpus")
    settings_ = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=root / "index", chunk_max_tokens=120)
    embedder = KeywordEmbedder()
    build_index(settings_, embedder)
    yield Assistant.load(settings=settings_, embedder=embedder)
