"""The Assistant: one loaded index, an embedder and a retriever behind a small API."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answer.compose import Draft, extractive_answer
from assistant.answer.extractive import SentenceScorer
from assistant.answer.model import AnswerModel, load_model
from assistant.answer.question import analyse, standalone
from assistant.config import ANSWER_MODES, SEARCH_MODES, Settings
from assistant.errors import ConfigError, QueryError
from assistant.index.embedder import Embedder, create_embedder
from assistant.index.store import IndexData, load_index
from assistant.retrieve import Filters, Retriever, Searcher
from assistant.sanitize import clean_text
from assistant.types import Answer, Hit

if TYPE_CHECKING:  # the builder (ingest, chunking, filelock) is imported by `build` only: not on a question's path
    from assistant.index.builder import BuildReport, Progress


class Assistant:
    """Search and answer over one index. Build with `Assistant.load()`."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        data: IndexData,
        *,
        chat_model: Any = None,
        model: AnswerModel | None = None,
        load_weights: bool = True,
        retriever: Searcher | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.data = data
        self.retriever: Searcher = retriever or Retriever(
            data,
            embedder,
            fusion=settings.fusion,
            hybrid_alpha=settings.hybrid_alpha,
            rrf_k=settings.rrf_k,
            candidates=settings.fusion_candidates,
        )
        # The learned answer scorer (answer/weights.json); a missing or mismatched file is refused here.
        # Training builds candidates before any weights exist, so it opens the assistant without them.
        self.scorer = SentenceScorer(data, model or (load_model() if load_weights else None))
        self._chat_model = chat_model  # a LangChain chat model; default built from the LLM settings
        self._llm: Any = None

    @classmethod
    def load(
        cls,
        index_dir: Path | str | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        chat_model: Any = None,
        load_weights: bool = True,
    ) -> Assistant:
        """Open the index at `index_dir` (default: settings.index_dir).

        `chat_model` (any LangChain chat model) replaces the one LLM mode would build from the settings.

        With `settings.store` set (milvus://HOST:PORT[/collection]) the index is read from that Milvus server.

        Raises:
            IndexMissingError: nothing has been built there yet (run `assistant index`).
            IndexCorruptError: the index is damaged or was built with another model or format.
            StoreError: the Milvus server named by `settings.store` cannot be reached or fails.
        """
        settings = (settings or Settings.from_env()).replace(index_dir=Path(index_dir) if index_dir else None)
        embedder = embedder or create_embedder(settings)
        if settings.store:  # a Milvus server (README "Scale out")
            from assistant.retrieve_milvus import open_milvus

            data, searcher = open_milvus(settings, embedder)
            return cls(settings, embedder, data, chat_model=chat_model, retriever=searcher, load_weights=load_weights)
        data = load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
        return cls(settings, embedder, data, chat_model=chat_model, load_weights=load_weights)

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
        from assistant.index.builder import build_index

        settings = settings or Settings.from_env()
        embedder = embedder or create_embedder(settings)
        if settings.store:  # a Milvus server (README "Scale out")
            from assistant.index.milvus_build import build_milvus

            return build_milvus(settings, embedder, paths=paths, rebuild=rebuild, progress=progress)
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
        text = self.clean_query(query)
        _check_filters(filters)
        top_k = self.settings.top_k if top_k is None else top_k
        mode = mode or self.settings.search_mode
        if not isinstance(top_k, int) or top_k < 1:
            raise QueryError(f"top_k must be a positive whole number; got {top_k!r}.")
        if mode not in SEARCH_MODES:
            raise QueryError(f"mode must be one of {', '.join(SEARCH_MODES)}; got {mode!r}.")
        return self.retriever.search(text, top_k=top_k, mode=mode, filters=filters)

    def answer(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: str | None = None,
        filters: Filters | None = None,
        history: Iterable[Any] | None = None,
        search_mode: str | None = None,
    ) -> Answer:
        """Answer `question` with verified [n] citations, or abstain when the documents don't answer it.

        Args:
            question: free text.
            top_k: passages retrieved (default from settings).
            mode: "extractive" (default from settings) or "llm" (needs a configured LLM provider).
            filters: optional document / date restriction.
            history: earlier turns (Answers, {"question": ...} dicts, (question, answer) pairs or strings);
                a follow-up question is made standalone from them before retrieval.
            search_mode: retrieval mode ("hybrid", "dense", "bm25"), default from settings.

        Raises:
            QueryError: the question is empty or an option is invalid.
            ConfigError: mode="llm" without a configured provider.
        """
        final: Answer | None = None
        for item in self.stream_answer(
            question, top_k=top_k, mode=mode, filters=filters, history=history, search_mode=search_mode
        ):
            if isinstance(item, Answer):
                final = item
        assert final is not None  # stream_answer always ends with an Answer
        return final

    def stream_answer(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: str | None = None,
        filters: Filters | None = None,
        history: Iterable[Any] | None = None,
        search_mode: str | None = None,
    ) -> Iterator[str | Answer]:
        """Like `answer`, but yields text as it is generated (LLM mode) and ends with the verified Answer.

        In extractive mode the answer text is yielded at once. What was streamed is a draft: the final
        Answer may mark or drop sentences that failed verification, or replace a failed LLM answer.
        """
        started = time.perf_counter()
        text = self.clean_query(question)
        _check_filters(filters)
        mode = mode or self.settings.mode
        if mode not in ANSWER_MODES:
            raise QueryError(f"mode must be one of {', '.join(ANSWER_MODES)}; got {mode!r}.")
        if mode == "llm" and not (self.settings.llm_configured or self._chat_model is not None):
            raise ConfigError(
                "LLM mode is not configured: set ASSISTANT_LLM_PROVIDER (openai or ollama) and ASSISTANT_LLM_MODEL "
                "(and ASSISTANT_LLM_BASE_URL for an OpenAI-compatible server), or use mode='extractive'."
            )
        top_k = self.settings.top_k if top_k is None else top_k
        if not isinstance(top_k, int) or top_k < 1:
            raise QueryError(f"top_k must be a positive whole number; got {top_k!r}.")
        search_mode = search_mode or self.settings.search_mode
        if search_mode not in SEARCH_MODES:
            raise QueryError(f"search_mode must be one of {', '.join(SEARCH_MODES)}; got {search_mode!r}.")
        history = list(history or ())
        notice = None
        # A follow-up with the earlier question's words added can outgrow the limit a question has.
        query = clean_text(standalone(text, history))[: self.settings.max_query_chars]
        if mode == "llm" and history:
            query, notice = self._llm_backend().condense(text, history, fallback=query)
        vector = self.embedder.embed_query(query)
        hits = self.retriever.search(query, top_k=top_k, mode=search_mode, filters=filters, vector=vector)
        retrieved = time.perf_counter()
        info = analyse(query)
        draft: Draft = extractive_answer(info, vector, hits, self.scorer, threshold=self.settings.abstain_threshold)
        used_llm = False
        if mode == "llm":
            # Yields the text as it arrives; returns the verified draft (or the extractive one on failure).
            draft, llm_notice, used_llm = yield from self._llm_backend().generate(query, hits, draft)
            notice = notice or llm_notice
        else:
            yield draft.text
        finished = time.perf_counter()
        timings = {
            "retrieve": (retrieved - started) * 1000,
            "answer": (finished - retrieved) * 1000,
            "total": (finished - started) * 1000,
        }
        yield Answer(
            question=text,
            text=draft.text,
            citations=draft.citations,
            abstained=draft.abstained,
            reason=draft.reason,
            hits=tuple(hits),
            mode="llm" if used_llm else "extractive",
            timings_ms=timings,
            sentences=draft.sentences,
            standalone_question=query,
            notice=notice,
            confidence=draft.confidence,
        )

    def _llm_backend(self) -> Any:
        if self._llm is None:
            from assistant.answer.llm import LLMBackend

            self._llm = LLMBackend(self.settings, self.scorer, self.embedder, chat_model=self._chat_model)
        return self._llm

    def clean_query(self, query: str) -> str:
        """The question as searched: text cleaned, whitespace collapsed, cut to max_query_chars."""
        if not isinstance(query, str):
            raise QueryError(f"The question must be text; got {type(query).__name__}.")
        text = " ".join(clean_text(query).split())
        if not text:
            raise QueryError("The question is empty; type a question about the documents.")
        return text[: self.settings.max_query_chars]


def _check_filters(filters: object) -> None:
    if filters is not None and not isinstance(filters, Filters):
        raise QueryError(f"filters must be an assistant.Filters (docs, date_from, date_to); got {filters!r}.")
