"""Text from outside (a command line, a browser, an API caller) made safe to search, print and encode."""

from __future__ import annotations

import re

# Lone surrogates (invalid UTF-8 in a command line arrives as them, so can a broken client) cannot be encoded
# and crashed the tokenizer and printing; other control characters mean nothing in a question.
_UNPRINTABLE = re.compile(r"[\ud800-\udfff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD and control characters other than whitespace removed."""
    return _UNPRINTABLE.sub(lambda m: "\ufffd" if m.group() >= "\ud800" else "", text)
