"""The systems the harness compares. Each one sees a question's text and nothing else from the gold file.

`AssistantSystem` wraps the product (default settings, retrieval ablations, LLM mode); `LangChainBaseline` is
the canonical LangChain RAG recipe over the same documents and the same embedding weights.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from assistant.answer.text import STOPWORDS
from assistant.core import Assistant
from assistant.types import Document

RETRIEVAL_DEPTH = 10  # hits kept for recall@10 / MRR@10 / nDCG@10, whatever the answer reads


@dataclass(frozen=True, slots=True)
class Retrieved:
    chunk_id: str
    doc: str
    text: str


@dataclass(frozen=True, slots=True)
class Cited:
    """What one [n] marker points to: the passage shown to the reader and the words quoted from it."""

    marker: int
    doc: str
    chunk_id: str
    quote: str
    passage: str


@dataclass(frozen=True, slots=True)
class SystemAnswer:
    text: str  # with [n] markers
    abstained: bool
    citations: tuple[Cited, ...]
    retrieved: tuple[Retrieved, ...]  # ranked, up to RETRIEVAL_DEPTH
    timings_ms: dict[str, float]  # retrieve, answer, total
    notice: str | None = None


class System(Protocol):
    name: str
    build_s: float | None

    def run(self, question: str) -> SystemAnswer: ...


@dataclass
class AssistantSystem:
    """The product with one set of options (retrieval mode, answer mode, passages)."""

    name: str
    assistant: Assistant
    build_s: float | None
    search_mode: str = "hybrid"
    mode: str = "extractive"
    top_k: int | None = None

    def _passage(self, chunk_id: str) -> str:
        index = self.assistant.scorer.position.get(chunk_id)
        return self.assistant.data.chunks[index].text if index is not None else ""

    @property
    def has_threshold(self) -> bool:
        """Extractive answers abstain below a confidence threshold, so they have an abstention curve."""
        return self.mode == "extractive"

    def abstains(self, question: str, threshold: float) -> bool:
        """Whether the answer abstains when the confidence threshold is `threshold`."""
        # A shallow copy shares the loaded index, retriever and scorer; only the answering threshold differs.
        assistant = copy.copy(self.assistant)
        assistant.settings = assistant.settings.replace(abstain_threshold=threshold)
        return assistant.answer(question, top_k=self.top_k, mode=self.mode, search_mode=self.search_mode).abstained

    def run(self, question: str) -> SystemAnswer:
        assistant = self.assistant
        result = assistant.answer(question, top_k=self.top_k, mode=self.mode, search_mode=self.search_mode)
        # The answer reads top_k passages; ranking metrics look deeper with the same query and retrieval mode.
        hits = assistant.search(result.standalone_question, top_k=RETRIEVAL_DEPTH, mode=self.search_mode)
        return SystemAnswer(
            text=result.text,
            abstained=result.abstained,
            citations=tuple(
                Cited(c.marker, c.doc, c.chunk_id, c.quote, self._passage(c.chunk_id)) for c in result.citations
            ),
            retrieved=tuple(Retrieved(h.chunk.chunk_id, h.chunk.doc, h.chunk.text) for h in hits),
            timings_ms=dict(result.timings_ms),
            notice=result.notice,
        )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"\w+")


class LangChainBaseline:
    """LangChain's canonical RAG: RecursiveCharacterTextSplitter(1000, 200), HuggingFaceEmbeddings, FAISS, k=4.

    It answers with the two sentences of its k retrieved chunks that share the most words with the question,
    each cited to its chunk. It never abstains. The vector store lives in memory and is never saved, so no
    pickle is written or read. It reads the same documents as the assistant (the loaders' markup-free text),
    so the comparison is about chunking, retrieval and answering, not about file parsing.
    """

    name = "langchain-baseline"
    k = 4
    sentences = 2

    def __init__(self, documents: Mapping[str, Document], embeddings: Any, *, build_s: float | None = None) -> None:
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document as LCDocument
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        pages = [
            LCDocument(page_content=d.text, metadata={"source": d.doc_id, "title": d.title, "date": d.date})
            for d in documents.values()
        ]
        chunks = splitter.split_documents(pages)
        for i, chunk in enumerate(chunks):
            chunk.metadata["chunk_id"] = f"lc-{i}"
        self.store = FAISS.from_documents(chunks, embeddings)
        self.chunks = len(chunks)
        self.build_s = build_s  # set by whoever timed the construction (model load included)

    def run(self, question: str) -> SystemAnswer:
        started = time.perf_counter()
        docs = self.store.similarity_search(question, k=max(self.k, RETRIEVAL_DEPTH))
        retrieved_at = time.perf_counter()
        wanted = {w for w in _TOKEN.findall(question.lower()) if w not in STOPWORDS}
        candidates = []  # (shared words, -chunk rank, -position, sentence, chunk rank)
        for rank, doc in enumerate(docs[: self.k]):
            for position, sentence in enumerate(s.strip() for s in _SENTENCE_END.split(doc.page_content)):
                shared = len(wanted & set(_TOKEN.findall(sentence.lower())))
                if sentence and shared:
                    candidates.append((shared, -rank, -position, sentence, rank))
        chosen = sorted(candidates, reverse=True)[: self.sentences]
        markers = {rank: n for n, rank in enumerate(dict.fromkeys(c[4] for c in chosen), start=1)}
        text = " ".join(f"{sentence} [{markers[rank]}]" for *_, sentence, rank in chosen)
        finished = time.perf_counter()
        citations = tuple(
            Cited(
                markers[rank],
                docs[rank].metadata["source"],
                docs[rank].metadata["chunk_id"],
                sentence,
                docs[rank].page_content,
            )
            for *_, sentence, rank in chosen
        )
        return SystemAnswer(
            text=text or "No sentence of the retrieved passages shares a word with the question.",
            abstained=False,
            citations=tuple({c.marker: c for c in citations}.values()),
            retrieved=tuple(
                Retrieved(d.metadata["chunk_id"], d.metadata["source"], d.page_content) for d in docs[:RETRIEVAL_DEPTH]
            ),
            timings_ms={
                "retrieve": (retrieved_at - started) * 1000,
                "answer": (finished - retrieved_at) * 1000,
                "total": (finished - started) * 1000,
            },
        )


def langchain_embeddings(model_path: str) -> Any:
    """HuggingFaceEmbeddings over a local sentence-transformers directory (never a hub name)."""
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"})
