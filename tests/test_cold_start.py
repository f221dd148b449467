"""Cold start: `assistant ask` runs without torch, and spaCy loaded without torch parses exactly as with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant import Settings
from assistant.spacy_load import _NoTorchInThisThread

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "eval" / "gold" / "dev.jsonl"

# The `assistant` command as its console script runs it; at exit it reports which heavy libraries got loaded.
PROBE = """
import atexit, runpy, sys
atexit.register(lambda: sys.stderr.write("LOADED " + " ".join(
    m for m in ("torch", "sentence_transformers", "spacy") if m in sys.modules) + "\\n"))
sys.argv = ["assistant", *sys.argv[1:]]
runpy.run_module("assistant.cli", run_name="__main__")
"""

# Parses questions with the pipeline loaded as assistant.nlp loads it, after importing torch first when asked.
PARSE = """
import json, sys
if sys.argv[1] == "torch-first":
    import torch
from assistant.nlp import pipeline
nlp = pipeline()
import thinc.compat  # imported by the pipeline's load; only looked at here
rows = []
for doc in nlp.pipe(json.loads(sys.stdin.read())):
    rows.append([[t.text, t.tag_, t.pos_, t.dep_, t.head.i, t.lemma_, t.ent_type_, t.ent_iob_] for t in doc])
print(json.dumps({"has_torch": thinc.compat.has_torch, "torch": "torch" in sys.modules, "rows": rows}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_the_torch_block_applies_to_its_own_thread_only() -> None:
    here = _NoTorchInThisThread(threading.get_ident())
    with pytest.raises(ModuleNotFoundError):
        here.find_spec("torch", None)
    with pytest.raises(ModuleNotFoundError):
        here.find_spec("torch.nn", None)
    assert here.find_spec("torchvision_like_name", None) is None and here.find_spec("numpy", None) is None
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.append(here.find_spec("torch", None)))
    other.start()
    other.join()
    assert seen == [None]  # another thread imports torch as usual


@pytest.mark.slow
def test_spacy_without_torch_parses_exactly_as_with_it() -> None:
    questions = [json.loads(line)["question"] for line in GOLD.read_text(encoding="utf-8").splitlines() if line]
    questions = questions[::4]  # a spread of the dev questions' texts (only the text is used)
    results = {}
    for how in ("torch-first", "as-assistant-loads-it"):
        out = subprocess.run(
            [sys.executable, "-c", PARSE, how], input=json.dumps(questions), capture_output=True, text=True,
            env=_env(), cwd=ROOT, check=True, timeout=300,
        )  # fmt: skip
        results[how] = json.loads(out.stdout)
    assert results["torch-first"]["has_torch"] and results["torch-first"]["torch"]
    assert not results["as-assistant-loads-it"]["has_torch"] and not results["as-assistant-loads-it"]["torch"]
    assert len(results["torch-first"]["rows"]) == len(questions)
    assert results["as-assistant-loads-it"]["rows"] == results["torch-first"]["rows"]


@pytest.mark.slow
def test_assistant_ask_answers_without_loading_torch(tmp_path: Path, small_corpus: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    from assistant.index.builder import build_index

    index_dir = tmp_path / "index"
    settings = Settings.from_env(environ={}, corpus_dir=small_corpus, index_dir=index_dir, chunk_max_tokens=120)
    build_index(settings, real_embedder)  # the default backend's vectors: what `assistant ask` expects
    env = {k: v for k, v in _env().items() if not k.startswith("ASSISTANT_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "ask", "How many persons have been relocated under the mechanism?",
         "--index-dir", str(index_dir)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "6012" in done.stdout and "[1]" in done.stdout  # answered, with its citation
    loaded = [line for line in done.stderr.splitlines() if line.startswith("LOADED")][-1].split()[1:]
    assert loaded == ["spacy"]  # the question was parsed, and neither torch nor sentence-transformers was imported
