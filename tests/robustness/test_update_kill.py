"""kill -9 at any point of an incremental update leaves a loadable index, the old one or the new one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.index.builder import build_index
from assistant.index.store import load_index
from tests.conftest import ROOT, KeywordEmbedder

# Runs one update; with a kill point k > 0 it SIGKILLs itself at the k-th line executed in assistant/index/ while
# update_index runs (copying, patching, writing, checksumming, publishing), so every step can be interrupted.
UPDATE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from assistant import Settings
    from assistant.index import builder
    from tests.conftest import KeywordEmbedder

    settings = Settings.from_env(environ={}, corpus_dir=Path(sys.argv[1]), index_dir=Path(sys.argv[2]),
                                 chunk_max_tokens=120)
    kill_at, lines = int(sys.argv[3]), 0
    where = os.path.join("assistant", "index", "")

    def tracer(frame, event, arg):
        global lines
        if event == "line" and where in frame.f_code.co_filename:
            lines += 1
            if lines == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return tracer

    real = builder.update_index

    def traced(*args, **kwargs):
        sys.settrace(tracer)
        try:
            return real(*args, **kwargs)
        finally:
            sys.settrace(None)

    builder.update_index = traced
    report = builder.build_index(settings, KeywordEmbedder())
    print(report.write_mode, lines)
    """
)
KILL_POINTS = 9


def _docs(index_dir: Path) -> set[str]:
    return set(load_index(index_dir).documents)


def _run(corpus: Path, index_dir: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", UPDATE, str(corpus), str(index_dir), str(kill_at)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_kill_at_any_point_of_an_update_leaves_the_old_or_the_new_index(
    settings: Settings, embedder: KeywordEmbedder, tmp_path: Path
) -> None:
    for i in range(4):
        (settings.corpus_dir / f"note{i}.txt").write_text(f"Note {i}: {i * 7} officers deployed at the border.\n")
    build_index(settings, embedder)
    old = _docs(settings.index_dir)
    (settings.corpus_dir / "note1.txt").unlink()
    (settings.corpus_dir / "note2.txt").write_text("Note 2, changed: the screening procedure starts in June.\n")
    (settings.corpus_dir / "gamma.txt").write_text("Gamma covers readmission cooperation.\n")
    new = (old - {"note1.txt"}) | {"gamma.txt"}
    pristine = tmp_path / "pristine"
    shutil.copytree(settings.index_dir, pristine)

    done = _run(settings.corpus_dir, settings.index_dir, 0)
    assert done.returncode == 0, done.stderr
    mode, lines = done.stdout.split()
    assert mode == "incremental" and int(lines) > 50 and _docs(settings.index_dir) == new

    outcomes = set()
    for k in sorted({1 + (int(lines) - 1) * j // (KILL_POINTS - 1) for j in range(KILL_POINTS)}):
        index_dir = tmp_path / f"kill{k}"
        shutil.copytree(pristine, index_dir)
        killed = _run(settings.corpus_dir, index_dir, k)
        assert killed.returncode == -9, (k, killed.stdout, killed.stderr)
        docs = _docs(index_dir)  # loads (checksums and all) or raises
        assert docs in (old, new), k
        outcomes.add("new" if docs == new else "old")
        Assistant.load(settings=settings.__class__.from_env(environ={}, corpus_dir=settings.corpus_dir,
                                                            index_dir=index_dir), embedder=embedder)  # fmt: skip
        # The next build finishes the job and leaves no temporary build behind.
        retry = build_index(settings.__class__.from_env(environ={}, corpus_dir=settings.corpus_dir, index_dir=index_dir,
                                                        chunk_max_tokens=120), embedder)  # fmt: skip
        assert retry.wrote == (docs == old) and _docs(index_dir) == new
        assert not [p for p in (index_dir / "builds").iterdir() if p.name.startswith(".tmp")]
    assert outcomes == {"old", "new"}  # the kill points reach both sides of the switch


@pytest.mark.parametrize("updates", [3])
def test_a_reader_with_the_index_loaded_keeps_answering_through_updates(
    settings: Settings, embedder: KeywordEmbedder, updates: int
) -> None:
    build_index(settings, embedder)
    reader = Assistant.load(settings=settings, embedder=embedder)
    before = [h.chunk.chunk_id for h in reader.search("Talent Partnership Pakistan", top_k=3, mode="hybrid")]
    errors: list[BaseException] = []
    stop = time.monotonic() + 20

    def search() -> None:
        while time.monotonic() < stop:
            try:
                got = [h.chunk.chunk_id for h in reader.search("Talent Partnership Pakistan", top_k=3, mode="hybrid")]
                assert got == before
                reader.data.chunks[len(reader.data.chunks) - 1]  # reads a record from its (possibly deleted) build
            except BaseException as exc:
                errors.append(exc)
                return
            if done.is_set():
                return

    done = threading.Event()
    thread = threading.Thread(target=search)
    thread.start()
    modes = []
    for i in range(updates):  # three publishes: the reader's own build is removed from disk after the second
        (settings.corpus_dir / f"extra{i}.txt").write_text(f"Note {i}: {i * 7} officers deployed.", encoding="utf-8")
        modes.append(build_index(settings, embedder).write_mode)
    done.set()
    thread.join(timeout=30)
    assert not errors and modes == ["incremental"] * updates
