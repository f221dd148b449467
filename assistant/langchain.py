"""LangChain integration: the assistant as a retriever and as a runnable answer chain.

    from assistant import Assistant
    from assistant.langchain import AssistantRetriever, answer_chain

    assistant = Assistant.load()
    docs = AssistantRetriever(assistant=assistant, top_k=4).invoke("relocations in 2024")
    result = answer_chain(assistant).invoke({"question": "...", "history": []})  # -> assistant.Answer

LangChain types appear only here and in the LLM backend; the rest of the package does not depend on them.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from assistant.core import Assistant
from assistant.retrieve import Filters
from assistant.types import Answer, Hit


def to_document(hit: Hit) -> LCDocument:
    """A LangChain Document carrying the chunk text and everything needed to cite it."""
    c = hit.chunk
    # The same fields `assistant search --json` prints, minus the text (it is the page content).
    metadata = {k: v for k, v in hit.to_dict().items() if k != "text"} | {"start": c.start, "end": c.end}
    return LCDocument(page_content=c.text, metadata=metadata, id=c.chunk_id)


class AssistantRetriever(BaseRetriever):
    """Hybrid (or dense / BM25) retrieval over the assistant's index, as a LangChain retriever."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    assistant: Assistant
    top_k: int = 5
    mode: str = "hybrid"
    filters: Filters | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        hits = self.assistant.search(query, top_k=self.top_k, mode=self.mode, filters=self.filters)
        return [to_document(h) for h in hits]


def answer_chain(assistant: Assistant, **options: Any) -> Runnable[Any, Answer]:
    """A runnable that answers: input is a question string or {"question", "history", "filters", ...}.

    Options (top_k, mode, filters, search_mode) set defaults that the input mapping may override.
    """

    def run(value: Any) -> Answer:
        if isinstance(value, str):
            return assistant.answer(value, **options)
        if isinstance(value, dict) and isinstance(value.get("question"), str):
            params = {**options, **{k: v for k, v in value.items() if k != "question"}}
            return assistant.answer(value["question"], **params)
        raise TypeError('answer_chain input must be a question string or a mapping with a "question" key')

    return RunnableLambda(run, name="assistant_answer")
