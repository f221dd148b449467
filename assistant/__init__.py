"""Question answering with cited passages over EU migration-policy documents.

>>> from assistant import answer
>>> result = answer("How many people were relocated under the voluntary solidarity mechanism?")
>>> result.text, result.citations[0].quote
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.errors import (
    AssistantError,
    ConfigError,
    IndexCorruptError,
    IndexMissingError,
    QueryError,
    StoreError,
)
from assistant.types import Answer, AnswerSentence, Chunk, Citation, Document, Hit, Sentence

if TYPE_CHECKING:
    from assistant.core import Assistant
    from assistant.retrieve import Filters

# Imported on first use (numpy, the index, the answerer): `assistant ui` and `python -m assistant.<module>` import
# this package first, and need none of it.
_LAZY = {"Assistant": "assistant.core", "Filters": "assistant.retrieve"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")


__all__ = [
    "Answer",
    "AnswerSentence",
    "Assistant",
    "AssistantError",
    "Chunk",
    "Citation",
    "ConfigError",
    "Document",
    "Filters",
    "Hit",
    "IndexCorruptError",
    "IndexMissingError",
    "QueryError",
    "Sentence",
    "Settings",
    "StoreError",
    "answer",
    "default_assistant",
]

_default: Assistant | None = None
_default_lock = threading.Lock()


def default_assistant() -> Assistant:
    """The Assistant for the settings in the environment, loaded once per process (thread-safe)."""
    global _default
    with _default_lock:
        if _default is None:
            from assistant.core import Assistant

            _default = Assistant.load()
        return _default


def answer(
    question: str,
    *,
    top_k: int | None = None,
    mode: str | None = None,
    filters: Filters | None = None,
    history: Iterable[Any] | None = None,
) -> Answer:
    """Answer `question` from the default index (see `Assistant.answer` for the options)."""
    return default_assistant().answer(question, top_k=top_k, mode=mode, filters=filters, history=history)
