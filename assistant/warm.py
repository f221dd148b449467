"""The chat page's Assistant, loaded for a long-lived server, and loaded early: when the server starts.

`load_for_server(index_dir)` opens the index, runs the embedding model once and loads the spaCy pipeline
(on a thread, meanwhile), then exempts what it loaded from Python's cyclic garbage collector: Streamlit runs
a full collection after every script run (runner.postScriptGC), and walking the index's and the models'
objects took 100-200 ms of every answer on the 2-core machine while holding the lock the server needs to
send the page. The objects live as long as the server; reference counting still frees them.

`start(index_dir)` begins that load on a thread once the server listens (`assistant ui`, ui/serve.py), so the
index and the models load while the browser fetches the page; the page's first run takes the result (`take`)
instead of loading again. Without a warm-up (plain `streamlit run ui/app.py`) the page loads them itself.
"""

from __future__ import annotations

import gc
import logging
import threading
from concurrent.futures import Future
from pathlib import Path

from assistant.config import Settings
from assistant.core import Assistant

log = logging.getLogger(__name__)
WARM_UP_QUESTION = "How many were there, and when did it start?"  # any question: it exercises the code, not the corpus
_lock = threading.Lock()
_started: dict[tuple[str, str], Future[Assistant]] = {}


def current_build(index_dir: Path) -> str:
    """The published build's name (the CURRENT file), "" when there is none: the key a loaded index goes by."""
    try:
        return (index_dir / "CURRENT").read_text(encoding="utf-8")
    except OSError:
        return ""


def load_for_server(index_dir: Path) -> Assistant:
    """Open the index at `index_dir` with the models warmed up, for a process that answers many questions."""
    from assistant.nlp import pipeline
    from assistant.spacy_load import preload

    gc.unfreeze()  # a previous build's objects (see the module docstring) become collectable again
    preload()  # the spaCy pipeline that reads each question loads on a thread meanwhile
    assistant = Assistant.load(settings=Settings.from_env(index_dir=index_dir))
    # The ONNX session's first run (its set-up) mostly outside the GIL, while spaCy still loads on its thread.
    assistant.embedder.embed_query(WARM_UP_QUESTION)
    pipeline()
    # One answer end to end (embedding, search, parse, scoring): every first call's set-up (the ONNX session's,
    # spaCy's, compiled patterns) happens here, not on the first person's question.
    try:
        assistant.answer(WARM_UP_QUESTION, mode="extractive")  # never a call to an LLM server
    except Exception as exc:  # an index without passages, say: the page still opens and says what is wrong
        log.warning("the warm-up question failed: %s", exc)
    # No collection before freezing: loading leaves a few hundred unreachable objects; a full pass costs 0.1-0.2 s.
    gc.freeze()
    return assistant


def start(index_dir: Path) -> None:
    """Begin loading the current build of `index_dir` on a daemon thread (nothing to do without an index)."""
    key = (str(index_dir), current_build(index_dir))
    if not key[1]:
        return
    future: Future[Assistant] = Future()
    with _lock:
        if key in _started:
            return
        _started[key] = future

    def run() -> None:
        try:
            future.set_result(load_for_server(index_dir))
        except BaseException as exc:  # the page loads again itself and shows the problem there
            log.warning("warming up the index at %s failed: %s", index_dir, exc)
            future.set_exception(exc)

    threading.Thread(target=run, name="assistant-warm-up", daemon=True).start()


def take(index_dir: Path, build: str) -> Assistant | None:
    """The Assistant started for this build (waiting for it to finish loading), or None if none was started
    or it failed. Other builds' warm-ups are dropped: the page asks for the one it shows."""
    with _lock:
        future = _started.pop((str(index_dir), build), None)
        _started.clear()
    if future is None:
        return None
    try:
        return future.result()
    except Exception:
        return None
