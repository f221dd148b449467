"""The list of indexed documents (id, title, date, reference) without their texts, for the chat page's sidebar.

A loaded build keeps each document's record, clean text included, in chunks.sqlite (assistant.index.chunkstore),
and `IndexData.documents` reads a record whole when it is looked up (a cache of 64 in front). A sidebar that
listed `documents.values()` on every rerun of the page read every document's text each time: nothing for the
five corpus documents, seconds for an archive of thousands. Here the store's SQLite engine extracts the four
small fields (json_extract, in C; the texts never become Python strings), once per loaded build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from assistant.errors import AssistantError


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    doc_id: str
    title: str
    date: str
    reference: str


def list_documents(documents: Mapping[str, Any]) -> list[DocumentInfo]:
    """The documents of an index, sorted by (date, id); `documents` is `IndexData.documents`."""
    store = getattr(documents, "store", None)
    rows: list[Any] | None = None
    if store is not None and callable(getattr(store, "query", None)):
        try:
            rows = store.query(
                "SELECT doc_id, json_extract(data, '$.title'), json_extract(data, '$.date'), "
                "json_extract(data, '$.reference') FROM documents"
            )
        except AssistantError:  # e.g. an SQLite without JSON functions: the records are read instead
            rows = None
    if rows is None or not all(all(isinstance(v, str) for v in row) for row in rows):
        rows = [(d.doc_id, d.title, d.date, d.reference) for d in documents.values()]
    return sorted((DocumentInfo(*row) for row in rows), key=lambda d: (d.date, d.doc_id))
