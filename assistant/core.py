"""The Assistant: one loaded index, an embedder and a retriever behind a small API."""

from __future__ import annotations

from pathlib import Path

from assistant.config import SEARCH_MODES, Settings
from assistant.errors import QueryError
from assistant.index.builder import BuildReport, Progress, build_index
from assistant.index.embedder import Embedder, SentenceTransformerEmbedder
from assistant.index.store import IndexData, load_index
from assistant.retrieve import Filters, Retriever
from assistant.types import Hit


class Assistant:
    """Search (and, later, answer) over one index. Build with `Assistant.load()`."""

    def __init__(self, settings: Settings, embedder: Embedder, data: IndexData) -> None:
        self.settings = settings
        self.embedder = embedder
        self.data = data
        self.retriever = Retriever(
            data,
            embedder,
            fusion=settings.fusion,
            hybrid_alpha=settings.hybrid_alpha,
            rrf_k=settings.rrf_k,
            candidates=settings.fusion_candidates,
        )

    @classmethod
    def load(
        cls,
        index_dir: Path | str | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> Assistant:
        """Open the index at `index_dir` (default: settings.index_dir).

        Raises:
            IndexMissingError: nothing has been built there yet (run `assistant index`).
            IndexCorruptError: the index is damaged or was built with another model or format.
        """
        settings = (settings or Settings.from_env()).replace(index_dir=Path(index_dir) if index_dir else None)
        embedder = embedder or SentenceTransformerEmbedder(
            settings.embedding_model, batch_size=settings.embedding_batch_size
        )
        data = load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
        return cls(settings, embedder, data)

    @staticmethod
    def build(
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        paths: list[Path] | None = None,
        rebuild: bool = False,
        progress: Progress | None = None,
    ) -> BuildReport:
        """Create or update the index for the corpus (see `assistant.index.builder.build_index`)."""
        settings = settings or Settings.from_env()
        embedder = embedder or SentenceTransformerEmbedder(
            settings.embedding_model, batch_size=settings.embedding_batch_size
        )
        return build_index(settings, embedder, paths=paths, rebuild=rebuild, progress=progress)

    def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        mode: str | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """Return the `top_k` best chunks for `query`.

        Args:
            query: free text; cut to `settings.max_query_chars` characters.
            top_k: number of hits (default from settings).
            mode: "hybrid" (default), "dense" or "bm25".
            filters: optional document / date restriction.

        Raises:
            QueryError: the query is empty, or top_k / mode are invalid.
        """
        text = self._clean_query(query)
        top_k = self.settings.top_k if top_k is None else top_k
        mode = mode or self.settings.search_mode
        if not isinstance(top_k, int) or top_k < 1:
            raise QueryError(f"top_k must be a positive whole number; got {top_k!r}.")
        if mode not in SEARCH_MODES:
            raise QueryError(f"mode must be one of {', '.join(SEARCH_MODES)}; got {mode!r}.")
        return self.retriever.search(text, top_k=top_k, mode=mode, filters=filters)

    def _clean_query(self, query: str) -> str:
        if not isinstance(query, str) or not query.strip():
            raise QueryError("The question is empty; type a question about the documents.")
        text = " ".join(query.split())
        return text[: self.settings.max_query_chars]
