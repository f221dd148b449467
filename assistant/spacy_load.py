"""Loading the spaCy pipeline quickly: without torch or spaCy's CLI, and in the background while the index loads.

spaCy's machine-learning library (thinc) imports torch at import time whenever torch is installed, only to
offer torch-backed layers; the small English pipeline runs on thinc's NumPy operations and never uses them.
That import alone took 2-4 s of the 6 s `assistant ask` cold start on the 2-core machine. While *the loading
thread* imports spaCy, `import torch` is reported as absent, so thinc records "no torch" and moves on; other
threads, and any later import, see torch as usual, and a torch already imported is left alone (thinc then
uses it as before). The parse is the same either way: the pipeline's layers run on NumPy in both cases
(tests/test_cold_start.py compares the two). Two more things spaCy does on the way are skipped with the same
result: importing its command-line package and building the tokenizer twice (see `_cli_deferred` and
`_register_bare_tokenizer`).

`preload()` starts that load on a daemon thread, so a command can read the index and embed the question
meanwhile; `assistant.nlp.pipeline()` waits for it (it holds the same lock) and returns the loaded pipeline.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BARE_TOKENIZER = "assistant.bare_tokenizer.v1"
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


class _NoTorchInThisThread(importlib.abc.MetaPathFinder):
    """Reports torch as not installed, to one thread only (the one loading spaCy)."""

    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if threading.get_ident() == self.thread_id and fullname.partition(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden while spaCy loads)", name=fullname)
        return None


def load_package(package_name: str) -> Any:
    """Import the spaCy model package `package_name` and load its pipeline, with torch hidden from thinc."""
    finder = _NoTorchInThisThread(threading.get_ident())
    hide = "torch" not in sys.modules  # already imported: thinc picks it up as it always did
    with _entry_points_by_group():
        if hide:
            sys.meta_path.insert(0, finder)
        try:
            with _cli_deferred():
                package = __import__(package_name)
            # thinc is imported by now; past this point torch imports normally again, in every thread.
        finally:
            if hide:
                sys.meta_path.remove(finder)
        _register_bare_tokenizer()
        # exclude: the sentence recogniser ships disabled (the parser sets sentence boundaries); not loading it
        # at all changes nothing else.
        return package.load(config={"nlp": {"tokenizer": {"@tokenizers": BARE_TOKENIZER}}}, exclude=["senter"])


@contextlib.contextmanager
def _entry_points_by_group() -> Iterator[None]:
    """While spaCy loads, catalogue finds plug-in entry points in a dict by group instead of a scan of them all.

    spaCy's and srsly's registries (catalogue) ask for the entry points of their group on every lookup, a few
    hundred times per load (srsly asks once per msgpack file it decodes), and each ask filtered every installed
    package's entry points: about 0.1 s of CPU here. catalogue also accepts a dict of group -> entry points
    (its form for older Pythons); this is that dict, made from the same entry points in the same order, in
    place only for the load (tests/test_cold_start.py compares the parses).
    """
    import catalogue

    original = catalogue.AVAILABLE_ENTRY_POINTS
    if not hasattr(original, "select"):  # a dict already
        yield
        return
    grouped: dict[str, list[Any]] = {}
    if isinstance(original, dict):  # importlib.metadata's SelectableGroups: a dict of group -> entry points
        grouped = {group: list(found) for group, found in dict.items(original)}
    else:
        for entry_point in original:
            grouped.setdefault(entry_point.group, []).append(entry_point)
    catalogue.AVAILABLE_ENTRY_POINTS = grouped
    try:
        yield
    finally:
        catalogue.AVAILABLE_ENTRY_POINTS = original


def _register_bare_tokenizer() -> None:
    """A tokenizer without the English exceptions, which loading then reads from the package's own files.

    spaCy first builds the tokenizer from the language defaults (2,700 special cases: about 0.13 s of CPU
    here) and then replaces every one of its settings with the package's saved tokenizer (rules, prefix,
    suffix and infix patterns, token and URL matches). Starting from an empty tokenizer ends in the same state
    (tests/test_cold_start.py compares the serialised tokenizers and the parses) without the first build.
    """
    from spacy.tokenizer import Tokenizer
    from spacy.util import registry

    if BARE_TOKENIZER in registry.tokenizers:
        return

    def bare() -> Callable[[Any], Any]:
        return lambda nlp: Tokenizer(nlp.vocab)

    registry.tokenizers.register(BARE_TOKENIZER, func=bare)


@contextlib.contextmanager
def _cli_deferred() -> Iterator[None]:
    """While spaCy is first imported, stand in for its command-line package, which it imports for `spacy.info`.

    That package pulls in typer, weasel, requests, httpx, jinja2 and rich (about 360 modules, 0.3-0.5 s of CPU
    here) and nothing in it is used to parse. The stand-ins live only for the import: afterwards `spacy.info`
    imports the real function on its first call and `import spacy.cli` imports the real package. Submodules
    other than `info` still resolve to the real files (the stand-in has the real package's path).
    """
    if "spacy" in sys.modules or "spacy.cli" in sys.modules:  # imported already: nothing to save
        yield
        return
    import importlib.util

    spec = importlib.util.find_spec("spacy")
    cli = ModuleType("spacy.cli")
    cli.__path__ = [str(Path(spec.origin).parent / "cli")] if spec and spec.origin else []
    info = ModuleType("spacy.cli.info")

    def deferred_info(*args: Any, **kwargs: Any) -> Any:
        from spacy.cli.info import info as real

        return real(*args, **kwargs)

    info.info = deferred_info  # type: ignore[attr-defined]
    sys.modules.update({"spacy.cli": cli, "spacy.cli.info": info})
    try:
        yield
    finally:
        for name in ("spacy.cli", "spacy.cli.info"):
            if sys.modules.get(name) in (cli, info):
                del sys.modules[name]
        spacy = sys.modules.get("spacy")
        if spacy is not None and getattr(spacy, "cli", None) is cli:
            delattr(spacy, "cli")


def preload() -> threading.Thread:
    """Start loading the spaCy pipeline on a background thread (once per process); returns that thread."""
    global _thread
    with _thread_lock:
        if _thread is None:
            from assistant.nlp import pipeline

            def load() -> None:
                # A failure is not lost: the caller's own pipeline() call tries again and raises it, in context.
                with contextlib.suppress(Exception):
                    pipeline()

            _thread = threading.Thread(target=load, name="spacy-preload", daemon=True)
            _thread.start()
        return _thread
