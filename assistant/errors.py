"""Errors the person using the assistant sees.

AssistantError                 base: the CLI and the UI catch it and show its message
 ├── ConfigError               a setting is wrong (bad model path, unknown mode)
 ├── IndexMissingError         no index has been built at the configured place
 ├── IndexCorruptError         the index on disk is damaged, truncated or from another model/format
 ├── ModelError                the answer scorer's weights are missing, damaged or from other code
 ├── CorpusError               a corpus file the whole build depends on (metadata.json) is malformed
 ├── QueryError                the question or search request cannot be used as given
 └── StoreError                the vector database named by ASSISTANT_STORE cannot be reached or used

Every message says what to do next.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: a problem the person can act on; the message says how."""


class ConfigError(AssistantError):
    """A setting is invalid or points at something that does not exist."""


class IndexMissingError(AssistantError):
    """No index exists yet where one was expected."""


class IndexCorruptError(AssistantError):
    """The index on disk cannot be trusted (damaged, truncated or mismatched)."""


class ModelError(AssistantError):
    """The learned answer-scoring weights cannot be used (missing, damaged, or for other features)."""


class CorpusError(AssistantError):
    """A corpus-wide file (corpus/metadata.json) is malformed; the message names the file and line."""


class QueryError(AssistantError):
    """A question or search request is empty or malformed."""


class StoreError(AssistantError):
    """The vector database server (ASSISTANT_STORE) is unreachable, timed out or refused a request."""
