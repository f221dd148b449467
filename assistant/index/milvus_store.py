"""The index in a Milvus server: `ASSISTANT_STORE=milvus://HOST:PORT[/collection]` (README, "Scale out").

Two collections per index:
    <name>            one row per chunk: ids, document metadata, text and sentence spans (for quoting), the
                      dense vector, and a BM25 sparse vector that Milvus computes from `lexical` (the chunk's
                      embedded text, tokenised and stemmed as the FAISS backend's bm25s does it)
    <name>_documents  per document a head row (pk "head/<doc>": its current content key and metadata) and its
                      clean text in parts (a VARCHAR holds at most 65,535 bytes)

A changed document is written new-rows-first: its chunks and text parts under the new content key, then its
head row (a one-row upsert: the switch), then the old key's rows are deleted. Readers keep only rows whose key
is their document's head key, so they see the old or the new version of a document, never half of one; a
crash leaves orphan rows, which readers ignore and the next `assistant index` removes.

The manifest (format, model, fingerprint, dimension, chunker settings) is kept as a collection property
(Milvus Lite keeps properties but drops the description) and in the description (for a real server's
console). Every request carries the configured timeout: pymilvus retries an unreachable server until then.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from assistant.errors import ConfigError, IndexCorruptError, IndexMissingError, StoreError
from assistant.index.milvus_schema import (
    CHUNK_FIELDS,
    CHUNK_OUTPUT,
    FORMAT,
    HEAD,
    MANIFEST_KEY,
    PART_CHARS,
    MilvusTarget,
    chunk_row,
    collection_specs,
    embedded,
    lexical_texts,
    row_chunk,
)
from assistant.types import Chunk, Document

WRITE_BATCH = 256
T = TypeVar("T")


class MilvusIndex:
    """One index in a Milvus server: connection, schema, manifest, and reads and writes of its rows."""

    def __init__(self, target: MilvusTarget, *, timeout: float) -> None:
        from pymilvus import MilvusClient

        # Failures reach the person as one StoreError; pymilvus' own retry logs and tracebacks would bury it.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        self.target = target
        self.timeout = timeout
        env = os.environ  # credentials are read here only, passed to the client and never stored or printed
        self.client = self._call(
            "connecting",
            lambda: MilvusClient(
                target.uri,
                token=env.get("ASSISTANT_MILVUS_TOKEN", ""),
                user=env.get("ASSISTANT_MILVUS_USER", ""),
                password=env.get("ASSISTANT_MILVUS_PASSWORD", ""),
                timeout=timeout,
            ),
        )

    # --- errors -------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from pymilvus.exceptions import MilvusException

        try:
            return fn()
        except MilvusException as exc:
            if "not exist" in str(exc.message) or "not found" in str(exc.message):
                raise self.missing() from None
            raise self._unavailable(what, exc.message) from None
        except Exception as exc:  # grpc and socket errors that pymilvus lets through
            if isinstance(exc, IndexMissingError | IndexCorruptError | StoreError | ConfigError):
                raise
            raise self._unavailable(what, f"{type(exc).__name__}: {exc}") from None

    def _unavailable(self, what: str, detail: object) -> StoreError:
        return StoreError(
            f"The Milvus server at {self.target.url} (ASSISTANT_STORE) failed while {what}: {detail}. Check that it "
            f"is running and reachable (each request waits at most ASSISTANT_STORE_TIMEOUT={self.timeout:g} s), "
            "or unset ASSISTANT_STORE to use the local FAISS index."
        )

    def missing(self) -> IndexMissingError:
        return IndexMissingError(
            f"No index in collection {self.target.collection!r} on the Milvus server {self.target.url} "
            f"(ASSISTANT_STORE). Run `assistant index --store {self.target.url}` to build it."
        )

    # --- schema and manifest ------------------------------------------------------------------------

    def exists(self) -> bool:
        return self._call(
            "looking for the collection",
            lambda: self.client.has_collection(self.target.collection, timeout=self.timeout),
        )

    def owned(self) -> bool:
        """The collection carries this program's manifest (so a rebuild may drop it)."""
        info = self._call(
            "reading the collection",
            lambda: self.client.describe_collection(self.target.collection, timeout=self.timeout),
        )
        raw = (info.get("properties") or {}).get(MANIFEST_KEY) or info.get("description") or ""
        return '"writer": "assistant"' in raw

    def manifest(self) -> dict[str, Any]:
        """The stored manifest; refuses a collection this program did not write or that is damaged."""
        if not self.exists():
            raise self.missing()
        info = self._call(
            "reading the collection",
            lambda: self.client.describe_collection(self.target.collection, timeout=self.timeout),
        )
        raw = (info.get("properties") or {}).get(MANIFEST_KEY) or info.get("description") or ""
        try:
            manifest = json.loads(raw)
            assert isinstance(manifest, dict) and manifest.get("writer") == "assistant"
        except (ValueError, AssertionError):
            raise IndexCorruptError(
                f"Collection {self.target.collection!r} on {self.target.url} was not written by this assistant. "
                "Name another collection in ASSISTANT_STORE (milvus://HOST:PORT/NAME)."
            ) from None
        fields = {f["name"]: getattr(f["type"], "name", str(f["type"])) for f in info.get("fields", [])}
        wrong = sorted(name for name, kind in CHUNK_FIELDS.items() if fields.get(name) != kind)
        if wrong or manifest.get("format") != FORMAT:
            problem = f"lacks fields {', '.join(wrong)}" if wrong else f"has format {manifest.get('format')}"
            raise IndexCorruptError(
                f"Collection {self.target.collection!r} on {self.target.url} {problem}; this version reads format "
                f"{FORMAT}. {self.target.rebuild_hint}"
            )
        if not self._call(
            "looking for the documents", lambda: self.client.has_collection(self.target.documents, timeout=self.timeout)
        ):
            raise IndexCorruptError(
                f"Collection {self.target.documents!r} (the document texts) is missing on {self.target.url}. "
                f"{self.target.rebuild_hint}"
            )
        return manifest

    def check_model(self, manifest: dict[str, Any], *, fingerprint: str) -> None:
        if manifest.get("embedding_fingerprint") != fingerprint:
            raise IndexCorruptError(
                f"Collection {self.target.collection!r} on {self.target.url} was built with embedding model "
                f"{manifest.get('embedding_model')!r} (fingerprint {manifest.get('embedding_fingerprint')}), but the "
                f"configured model has fingerprint {fingerprint}. {self.target.rebuild_hint}"
            )

    def create(self, manifest: dict[str, Any]) -> None:
        """Create both collections (the caller has checked that neither is in use by something else)."""
        for name, spec in zip((self.target.documents, self.target.collection), collection_specs(self.client, manifest),
                              strict=True):  # fmt: skip
            self._call("creating the collections", lambda name=name, spec=spec: self.client.create_collection(  # type: ignore[misc]
                name, consistency_level="Strong", timeout=self.timeout, **spec))  # fmt: skip

    def set_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps({**manifest, "writer": "assistant", "format": FORMAT}, sort_keys=True)
        self._call(
            "updating the manifest",
            lambda: self.client.alter_collection_properties(
                self.target.collection, properties={MANIFEST_KEY: text}, timeout=self.timeout
            ),
        )

    def drop(self) -> None:
        for name in (self.target.collection, self.target.documents):
            self._call(
                "dropping the old collection",
                lambda n=name: self.client.drop_collection(  # type: ignore[misc]
                    n, timeout=self.timeout
                ),
            )

    def load(self) -> None:
        """A real server searches only loaded collections (Milvus Lite loads on open)."""
        for name in (self.target.collection, self.target.documents):
            self._call(
                "loading the collection",
                lambda n=name: self.client.load_collection(  # type: ignore[misc]
                    n, timeout=self.timeout
                ),
            )

    # --- reads --------------------------------------------------------------------------------------

    def _scan(self, collection: str, expr: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        iterator = self._call(
            "reading rows",
            lambda: self.client.query_iterator(
                collection, batch_size=1000, filter=expr, output_fields=fields, timeout=self.timeout
            ),
        )
        try:
            while batch := self._call("reading rows", iterator.next):
                yield from batch
        finally:
            iterator.close()

    def heads(self) -> dict[str, dict[str, Any]]:
        """doc -> {"key", "meta"} of every document's current version."""
        rows = self._scan(self.target.documents, f"part == {HEAD}", ["doc", "key", "meta"])
        return {r["doc"]: {"key": r["key"], "meta": r["meta"]} for r in rows}

    def snapshot(self) -> tuple[dict[str, Document], list[Chunk], list[str], dict[str, str]]:
        """Every document's current version: documents, chunks (in document order), their row keys, doc -> key."""
        heads = self.heads()
        parts: dict[str, dict[int, str]] = {}
        for row in self._scan(self.target.documents, "part >= 0", ["doc", "key", "part", "text"]):
            if heads.get(row["doc"], {}).get("key") == row["key"]:
                parts.setdefault(row["doc"], {})[int(row["part"])] = row["text"]
        rows: list[dict[str, Any]] = [
            r
            for r in self._scan(self.target.collection, "", CHUNK_OUTPUT)
            if heads.get(r["doc"], {}).get("key") == r["key"]
        ]
        rows.sort(key=lambda r: (r["doc"], int(r["seq"])))
        documents: dict[str, Document] = {}
        for doc, head in sorted(heads.items()):
            meta = head["meta"]
            got = parts.get(doc, {})
            chunks_here = sum(1 for r in rows if r["doc"] == doc)
            if sorted(got) != list(range(int(meta["parts"]))) or chunks_here != int(meta["chunks"]):
                raise IndexCorruptError(
                    f"Document {doc!r} in collection {self.target.collection!r} on {self.target.url} is incomplete "
                    f"({len(got)} of {meta['parts']} text parts, {chunks_here} of {meta['chunks']} chunks). "
                    f"{self.target.rebuild_hint}"
                )
            documents[doc] = Document(
                doc_id=doc,
                title=meta["title"],
                date=meta["date"],
                reference=meta["reference"],
                sha256=meta["sha256"],
                text="".join(got[i] for i in range(len(got))),
                page_starts=tuple(meta["page_starts"]),
            )
        chunks = [row_chunk(r) for r in rows]
        return documents, chunks, [r["pk"] for r in rows], {doc: head["key"] for doc, head in heads.items()}

    def search(self, fn: Callable[[Any], T], what: str = "searching") -> T:
        """Run `fn(client)` with this index's error handling (the retriever builds the requests)."""
        return self._call(what, lambda: fn(self.client))

    # --- writes -------------------------------------------------------------------------------------

    def write_document(self, document: Document, key: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Insert a document's new version, switch its head row to it, then delete its other versions."""
        name = self.target.collection
        lexical = lexical_texts([embedded(c) for c in chunks])
        rows = [
            chunk_row(c, key, seq, vector, words)
            for seq, (c, vector, words) in enumerate(zip(chunks, vectors, lexical, strict=True))
        ]
        for b in range(0, len(rows), WRITE_BATCH):
            batch = rows[b : b + WRITE_BATCH]
            self._call(
                "writing chunks",
                lambda batch=batch: self.client.upsert(  # type: ignore[misc]
                    name, batch, timeout=self.timeout
                ),
            )
        texts = [document.text[i : i + PART_CHARS] for i in range(0, len(document.text), PART_CHARS)] or [""]
        parts = [
            {
                "pk": f"{key}/{i}",
                "doc": document.doc_id,
                "key": key,
                "part": i,
                "text": t,
                "meta": {},
                "vector": [0.0, 0.0],
            }
            for i, t in enumerate(texts)
        ]
        meta = {
            "title": document.title,
            "date": document.date,
            "reference": document.reference,
            "sha256": document.sha256,
            "page_starts": list(document.page_starts),
            "parts": len(texts),
            "chunks": len(chunks),
        }
        head = {
            "pk": f"head/{document.doc_id}",
            "doc": document.doc_id,
            "key": key,
            "part": HEAD,
            "text": "",
            "meta": meta,
            "vector": [0.0, 0.0],
        }
        self._call(
            "writing the document text", lambda: self.client.upsert(self.target.documents, parts, timeout=self.timeout)
        )
        # No flush here: with Strong consistency every acknowledged row is visible to readers before the head
        # switch. The build flushes once at the end, so a batch of documents becomes one segment and Milvus'
        # per-segment BM25 statistics cover all of it (a flush per document gave each document its own IDF).
        self._call(
            "switching the document", lambda: self.client.upsert(self.target.documents, [head], timeout=self.timeout)
        )
        self._delete_versions(document.doc_id, keep=key)

    def remove_document(self, doc: str) -> None:
        self._call(
            "removing a document",
            lambda: self.client.delete(self.target.documents, ids=[f"head/{doc}"], timeout=self.timeout),
        )
        self._delete_versions(doc, keep=None)

    def _delete_versions(self, doc: str, *, keep: str | None) -> None:
        expr = f"doc == {_quote(doc)}" + (f" and key != {_quote(keep)}" if keep else "")
        self._call(
            "deleting old rows", lambda: self.client.delete(self.target.collection, filter=expr, timeout=self.timeout)
        )
        parts = expr + " and part >= 0"
        self._call(
            "deleting old rows", lambda: self.client.delete(self.target.documents, filter=parts, timeout=self.timeout)
        )

    def remove_orphans(self, heads: dict[str, dict[str, Any]]) -> None:
        """Rows of documents without a head (left by an interrupted write or removal)."""
        docs = {r["doc"] for r in self._scan(self.target.collection, "", ["doc"])}
        docs |= {r["doc"] for r in self._scan(self.target.documents, "part >= 0", ["doc"])}
        for doc in sorted(docs - set(heads)):
            self._delete_versions(doc, keep=None)

    def flush(self) -> None:
        """Seal what was written: Milvus searches unflushed rows far more slowly (measured 240-290 ms vs 6-16 ms)."""
        for name in (self.target.collection, self.target.documents):
            self._call("flushing", lambda n=name: self.client.flush(n, timeout=self.timeout))  # type: ignore[misc]


def _quote(value: str) -> str:
    return json.dumps(value)  # a double-quoted string with backslash escapes, as Milvus expressions read it
