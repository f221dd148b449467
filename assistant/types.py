"""The data that flows through the assistant: Document -> Chunk -> Hit (-> Answer, in the answering layer)."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Document:
    """One corpus file after loading: its clean text and metadata."""

    doc_id: str  # the file name in corpus/
    title: str
    date: str  # ISO date, possibly partial ("2024-12"); "" when unknown
    reference: str
    sha256: str  # of the file's bytes
    text: str  # markup-free text; every Chunk span and Sentence span points into it
    page_starts: tuple[int, ...] = ()  # offsets in text where each PDF page starts (empty for non-PDF)

    def page_at(self, offset: int) -> int | None:
        """1-based page holding the character at `offset`, or None for documents without pages."""
        if not self.page_starts:
            return None
        # Bisection: the chunker asks for every block, so a scan over the pages made long PDFs quadratic.
        return max(0, bisect.bisect_right(self.page_starts, offset) - 1) + 1


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence (or list item, or table cell) inside a chunk.

    `start`/`end` index the chunk's text; `doc_start`/`doc_end` index the document's text, so
    `document.text[doc_start:doc_end]` is the exact source wording (whitespace aside).
    """

    start: int
    end: int
    doc_start: int
    doc_end: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable passage with everything needed to cite it."""

    chunk_id: str  # content hash: stable across rebuilds of the same text
    doc: str
    title: str
    date: str
    section: str  # heading path, " > "-separated
    page: int | None
    text: str
    start: int  # span in the document's text
    end: int
    sentences: tuple[Sentence, ...]
    tokens: int  # length of the embedded text in the embedding model's word pieces
    # Sentences (indexes into `sentences`) that read like instructions to a model (assistant.ingest.injection):
    # never put in an LLM prompt, never quoted as an answer, never enough to support an answer sentence.
    flagged: tuple[int, ...] = ()

    def sentence_text(self, sentence: Sentence) -> str:
        return self.text[sentence.start : sentence.end]

    def is_flagged(self, sentence_index: int) -> bool:
        """Whether sentence `sentence_index` is instruction-like text planted in the document."""
        return sentence_index in self.flagged

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sentences"] = [[s.start, s.end, s.doc_start, s.doc_end] for s in self.sentences]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        fields = dict(data)
        fields["sentences"] = tuple(Sentence(*map(int, s)) for s in data["sentences"])
        fields["flagged"] = tuple(int(j) for j in data.get("flagged", ()))
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk returned by search, with its 1-based rank and fused score."""

    rank: int
    score: float
    chunk: Chunk

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "doc": c.doc,
            "title": c.title,
            "date": c.date,
            "section": c.section,
            "page": c.page,
            "chunk_id": c.chunk_id,
            "text": c.text,
        }


@dataclass(frozen=True, slots=True)
class Citation:
    """What one `[marker]` in an answer points to: a passage and the exact source words behind the sentence."""

    marker: int
    doc: str
    title: str
    date: str
    section: str
    page: int | None
    chunk_id: str
    quote: str  # verbatim source text (whitespace collapsed): a substring of the document's text
    score: float  # support score of the sentence by this passage, 0..1
    supported: bool
    reason: str = ""  # why it does not support its sentence, when the reader needs more than "unsupported"
    # Every stretch of this passage the answer quotes (several sentences, or a table row's cells), as the page
    # highlights them; each is verbatim document text. `quote` is the first whole quote.
    quotes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    """One sentence of an answer, its markers, and whether at least one of its citations supports it."""

    text: str  # without markers
    markers: tuple[int, ...]
    supported: bool
    reason: str = ""  # why it is not supported, when there is more to say (e.g. instruction-like source text)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "markers": list(self.markers), "supported": self.supported, "reason": self.reason}


ABSTAIN_TEXT = "The documents don't answer this question."


@dataclass(frozen=True, slots=True)
class Answer:
    """A verified answer (or an abstention) to one question."""

    question: str
    text: str  # sentences each followed by their [n] markers
    citations: tuple[Citation, ...]
    abstained: bool
    reason: str | None  # why it abstained, or None
    hits: tuple[Hit, ...]  # everything retrieved for the question
    mode: str  # "extractive" or "llm"
    timings_ms: dict[str, float]  # retrieve, answer, total
    sentences: tuple[AnswerSentence, ...] = ()
    standalone_question: str = ""  # the question as searched, after resolving a follow-up
    notice: str | None = None  # something the reader should know (an LLM failure and its fallback)
    confidence: float | None = None  # probability that the documents answer the question (learned, calibrated)

    @property
    def supported(self) -> bool:
        return all(s.supported for s in self.sentences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "abstained": self.abstained,
            "reason": self.reason,
            "mode": self.mode,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "sentences": [s.to_dict() for s in self.sentences],
            "standalone_question": self.standalone_question,
            "notice": self.notice,
            "confidence": None if self.confidence is None else round(float(self.confidence), 4),
            "hits": [
                {"rank": h.rank, "doc": h.chunk.doc, "chunk_id": h.chunk.chunk_id, "score": round(float(h.score), 6)}
                for h in self.hits
            ],
        }
