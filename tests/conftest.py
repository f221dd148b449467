"""Shared fixtures: a small keyword embedder (a real class, no model), tiny corpora, the real model once."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant import Settings

ROOT = Path(__file__).resolve().parent.parent


class KeywordEmbedder:
    """Embeds text as a normalised bag of hashed words; counts tokens as words + 2 (like [CLS]/[SEP])."""

    name = "keyword-test-embedder"
    dimension = 64

    def __init__(self, fingerprint: str = "keyword-v1") -> None:
        self.fingerprint = fingerprint
        self.embedded: list[str] = []

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(re.findall(r"\w+|[^\w\s]", t)) + 2 for t in texts]


@pytest.fixture
def embedder() -> KeywordEmbedder:
    return KeywordEmbedder()


def write_small_corpus(corpus: Path) -> Path:
    """Two small documents with a figure, an amount, a name and a year (the unit tests' corpus)."""
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "2024-01-10_alpha.md").write_text(
        "# Alpha report\n\n## Relocation\n\nUp to 25 November, 6012 persons have been relocated under the mechanism. "
        "Most came from Cyprus.\n\n## Funding\n\nThe Commission approved EUR 52.1 million for smart borders.\n",
        encoding="utf-8",
    )
    (corpus / "2023-05-02_beta.txt").write_text(
        "Beta note\n\nThe Talent Partnership in Pakistan will be implemented by GIZ. It starts in 2025.\n\n"
        "Returns rose sharply in the second half of the year.\n",
        encoding="utf-8",
    )
    return corpus


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    return write_small_corpus(tmp_path / "corpus")


@pytest.fixture
def settings(tmp_path: Path, small_corpus: Path) -> Settings:
    return Settings.from_env(environ={}, corpus_dir=small_corpus, index_dir=tmp_path / "index", chunk_max_tokens=120)


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The packaged MiniLM model through the default backend (what the CLI and the UI load), once per session."""
    from assistant.index.embedder import create_embedder

    return create_embedder(Settings.from_env(environ={}))


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:  # type: ignore[no-untyped-def]
    """The real corpus indexed with the real model, once per test session (about 40 s)."""
    from assistant.index.builder import build_index

    index_dir = tmp_path_factory.mktemp("real") / "index"
    settings = Settings.from_env(environ={}, corpus_dir=ROOT / "corpus", index_dir=index_dir)
    report = build_index(settings, real_embedder)
    assert report.documents == 5 and not report.skipped
    return index_dir
