"""Question answering with cited passages over EU migration-policy documents."""

from __future__ import annotations

from assistant.config import Settings
from assistant.core import Assistant
from assistant.errors import (
    AssistantError,
    ConfigError,
    IndexCorruptError,
    IndexMissingError,
    QueryError,
)
from assistant.retrieve import Filters
from assistant.types import Chunk, Document, Hit, Sentence

__all__ = [
    "Assistant",
    "AssistantError",
    "Chunk",
    "ConfigError",
    "Document",
    "Filters",
    "Hit",
    "IndexCorruptError",
    "IndexMissingError",
    "QueryError",
    "Sentence",
    "Settings",
]
