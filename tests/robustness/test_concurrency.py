"""Concurrency: parallel builds, a reader during publish, threads answering. Every loop bounded in count and time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from assistant import Answer, Assistant, Settings
from assistant.index.builder import build_index
from assistant.index.store import load_index
from tests.conftest import ROOT, KeywordEmbedder

BUILD = """
import sys, time
from pathlib import Path
from assistant import Settings
from assistant.index.builder import build_index
from tests.conftest import KeywordEmbedder

class Slow(KeywordEmbedder):  # slow enough that two builds overlap
    def embed_documents(self, texts):
        time.sleep(0.3)
        return super().embed_documents(texts)

settings = Settings.from_env(environ={}, corpus_dir=Path(sys.argv[1]), index_dir=Path(sys.argv[2]),
                             chunk_max_tokens=120)
stages = []
report = build_index(settings, Slow(), rebuild=sys.argv[3] == "rebuild", progress=lambda s, d, t: stages.append(s))
print("waited" if "waiting" in stages else "first", report.documents)
"""


def test_two_builds_at_once_both_succeed_and_leave_a_whole_index(settings: Settings, embedder: KeywordEmbedder) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = textwrap.dedent(BUILD)
    for attempt in range(3):  # bounded: three rounds of two parallel builds
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(settings.corpus_dir), str(settings.index_dir), "rebuild"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outputs]
        lines = sorted(out.strip() for out, _ in outputs)
        assert lines == ["first 2", "waited 2"], (attempt, lines)
        data = load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
        assert len(data.documents) == 2 and (data.path / "manifest.json").exists()


def test_the_previous_build_survives_a_publish(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    first = json.loads((settings.index_dir / "CURRENT").read_text())["build"]
    (settings.corpus_dir / "new.txt").write_text("The Commission approved EUR 3 million.", encoding="utf-8")
    build_index(settings, embedder)
    second = json.loads((settings.index_dir / "CURRENT").read_text())["build"]
    builds = settings.index_dir / "builds"
    assert (builds / first).is_dir() and (builds / second).is_dir()  # a reader of the old one can finish
    (settings.corpus_dir / "new2.txt").write_text("Returns rose in 2024.", encoding="utf-8")
    build_index(settings, embedder)
    assert not (builds / first).exists() and len(list(builds.iterdir())) == 2  # older than that: removed


def test_a_load_that_loses_the_race_with_a_publish_retries(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    (settings.corpus_dir / "new.txt").write_text("The Commission approved EUR 3 million.", encoding="utf-8")
    build_index(settings, embedder)
    (settings.corpus_dir / "new2.txt").write_text("Returns rose in 2024.", encoding="utf-8")
    import assistant.index.store as store

    real = store._load_once
    calls: list[int] = []
    building = False

    def racing(index_dir: Path, fingerprint: str | None):  # type: ignore[no-untyped-def]
        nonlocal building
        if building:  # the builder's own load of the previous index
            return real(index_dir, fingerprint)
        calls.append(1)
        if len(calls) == 1:  # a build publishes (and deletes the oldest) while this reader is loading
            building = True
            build_index(settings, embedder)
            building = False
            raise store.IndexCorruptError("The index is missing chunks.json.")
        return real(index_dir, fingerprint)

    store._load_once = racing  # type: ignore[assignment]
    try:
        data = load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
    finally:
        store._load_once = real  # type: ignore[assignment]
    assert len(calls) == 2 and "new2.txt" in data.documents


def test_readers_during_repeated_publishes_never_fail(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    errors: list[BaseException] = []
    loads = 0
    stop = time.monotonic() + 6  # bounded in time ...

    def reader() -> None:
        nonlocal loads
        while time.monotonic() < stop and loads < 400:  # ... and in count
            try:
                load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
                loads += 1
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(8):
        (settings.corpus_dir / f"extra{i}.txt").write_text(f"Note {i}: {i * 7} officers deployed.", encoding="utf-8")
        build_index(settings, embedder)
    thread.join(timeout=30)
    assert not errors and loads > 0


def test_threads_answering_at_once_give_whole_answers(small_assistant: Assistant) -> None:
    questions = ["How many persons have been relocated?", "Who implements the Talent Partnership?",
                 "How much for smart borders?", "When does it start?"]  # fmt: skip
    results: list[tuple[str, Answer]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = time.monotonic() + 5

    def work(i: int) -> None:
        for n in range(40):  # bounded in count and time
            if time.monotonic() > stop:
                return
            q = questions[(i + n) % len(questions)]
            try:
                answer = small_assistant.answer(q)
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                results.append((q, answer))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(results) > 8
    expected = {q: small_assistant.answer(q).text for q in questions}
    assert all(answer.question == q and answer.text == expected[q] for q, answer in results)  # no cross-talk
