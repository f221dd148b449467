"""The Milvus backend's layout: where an index lives, its two collections' schemas, and rows <-> Chunks.

See assistant.index.milvus_store for how the collections are written and read.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError
from assistant.types import Chunk, Sentence

FORMAT = 1
MANIFEST_KEY = "assistant.manifest"
HEAD = -1  # `part` of a document's head row
PART_CHARS = 16000  # at most 4 bytes a character: a part stays under VARCHAR's 65,535-byte cap
TEXT_BYTES = 65535
WRITE_BATCH = 256
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,190}$")
# What readers rely on; a collection without these fields (or of other types) is not one of ours.
CHUNK_FIELDS = {
    "pk": "VARCHAR",
    "chunk_id": "VARCHAR",
    "doc": "VARCHAR",
    "key": "VARCHAR",
    "seq": "INT64",
    "title": "VARCHAR",
    "date": "VARCHAR",
    "date_end": "VARCHAR",
    "section": "VARCHAR",
    "page": "INT64",
    "start": "INT64",
    "end": "INT64",
    "tokens": "INT64",
    "text": "VARCHAR",
    "lexical": "VARCHAR",
    "sentences": "JSON",
    "vector": "FLOAT_VECTOR",
    "sparse": "SPARSE_FLOAT_VECTOR",
}
CHUNK_OUTPUT = [f for f, kind in CHUNK_FIELDS.items() if not kind.endswith("VECTOR") and f != "lexical"]


@dataclass(frozen=True, slots=True)
class MilvusTarget:
    """Where an index lives in Milvus, parsed from the store setting (which never holds credentials)."""

    url: str  # the setting as given, safe to print
    uri: str  # what pymilvus connects to
    collection: str

    @property
    def documents(self) -> str:
        return f"{self.collection}_documents"

    @property
    def rebuild_hint(self) -> str:
        return f"Run `assistant index --store {self.url} --rebuild` to rebuild it."


def parse_store(url: str, *, corpus_dir: Path) -> MilvusTarget:
    """`milvus://HOST:PORT[/collection]` (or `milvus+https://...` for TLS); the collection defaults to the corpus."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("milvus", "milvus+https") or not parts.hostname:
        raise ConfigError(f"ASSISTANT_STORE must look like milvus://HOST:PORT[/collection]; got {url!r}.")
    if parts.username or parts.password:
        raise ConfigError("ASSISTANT_STORE must not hold credentials; set ASSISTANT_MILVUS_TOKEN instead.")
    try:
        port = parts.port or 19530
    except ValueError:
        raise ConfigError(f"ASSISTANT_STORE has an invalid port: {url!r}.") from None
    name = parts.path.strip("/") or default_collection(corpus_dir)
    if not _NAME.match(name):
        raise ConfigError(
            f"The collection name {name!r} in ASSISTANT_STORE must start with a letter or _ and use only letters, "
            "digits and _ (at most 191 characters)."
        )
    scheme = "https" if parts.scheme == "milvus+https" else "http"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return MilvusTarget(url=url, uri=f"{scheme}://{host}:{port}", collection=name)


def default_collection(corpus_dir: Path) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", corpus_dir.expanduser().resolve().name).strip("_").lower()
    return f"assistant_{slug or 'corpus'}"[:100]


def lexical_texts(texts: Sequence[str]) -> list[str]:
    """Texts as bm25s tokenises them for the FAISS backend (English stop words out, Snowball stems).

    Milvus' own analyzers differ between servers (Milvus Lite has no stemmer), so the words are stemmed here
    and Milvus' `standard` analyzer only splits them again: both backends and every server count the same terms.
    """
    import bm25s
    import Stemmer

    if not texts:
        return []
    tokens = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False, return_ids=False
    )
    return [" ".join(words) for words in tokens]


def date_end(date: str) -> str:
    # "2024-12" stands for the whole month: compare against its last possible day (as Filters.allows does).
    return date + "-31" if len(date) == 7 else date + "-12-31" if len(date) == 4 else date


def collection_specs(client: Any, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """`create_collection` arguments for the documents' collection, then the chunks' (whose creation comes last)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    text = json.dumps({**manifest, "writer": "assistant", "format": FORMAT}, sort_keys=True)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=text[:4000])
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=128)
    for name, length in (
        ("chunk_id", 64),
        ("doc", 512),
        ("key", 64),
        ("title", 2048),
        ("date", 32),
        ("date_end", 32),
        ("section", 4096),
        ("text", TEXT_BYTES),
    ):
        schema.add_field(name, DataType.VARCHAR, max_length=length)
    for name in ("seq", "page", "start", "end", "tokens"):
        schema.add_field(name, DataType.INT64)
    schema.add_field(
        "lexical",
        DataType.VARCHAR,
        max_length=TEXT_BYTES,
        enable_analyzer=True,
        analyzer_params={"tokenizer": "standard"},
    )
    schema.add_field("sentences", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(manifest["dimension"]))
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["lexical"],
            output_field_names=["sparse"],
        )
    )
    index = client.prepare_index_params()
    # HNSW: what a real server needs at millions of rows; near exact at this size. Nested "params":
    # Milvus Lite silently drops the flat form.
    index.add_index("vector", index_type="HNSW", metric_type="IP", params={"params": {"M": 16, "efConstruction": 200}})
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.add_index("doc", index_type="INVERTED")
    docs = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    docs.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=640)
    docs.add_field("doc", DataType.VARCHAR, max_length=512)
    docs.add_field("key", DataType.VARCHAR, max_length=64)
    docs.add_field("part", DataType.INT64)
    docs.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
    docs.add_field("meta", DataType.JSON)
    docs.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    docs_index = client.prepare_index_params()
    docs_index.add_index("vector", index_type="FLAT", metric_type="L2")
    return [
        {"schema": docs, "index_params": docs_index},
        {"schema": schema, "index_params": index, "properties": {MANIFEST_KEY: text}},
    ]


def embedded(chunk: Chunk) -> str:
    from assistant.ingest.chunker import embedding_text

    return embedding_text(chunk)


def chunk_row(chunk: Chunk, key: str, seq: int, vector: np.ndarray, lexical: str) -> dict[str, Any]:
    return {
        "pk": f"{key}/{seq}",
        "chunk_id": chunk.chunk_id,
        "doc": chunk.doc,
        "key": key,
        "seq": seq,
        "title": chunk.title,
        "date": chunk.date,
        "date_end": date_end(chunk.date),
        "section": chunk.section,
        "page": -1 if chunk.page is None else chunk.page,
        "start": chunk.start,
        "end": chunk.end,
        "tokens": chunk.tokens,
        "text": chunk.text,
        "lexical": lexical,
        "sentences": [[s.start, s.end, s.doc_start, s.doc_end] for s in chunk.sentences],
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
    }


def row_chunk(row: dict[str, Any]) -> Chunk:
    page = int(row["page"])
    return Chunk(
        chunk_id=row["chunk_id"],
        doc=row["doc"],
        title=row["title"],
        date=row["date"],
        section=row["section"],
        page=None if page < 0 else page,
        text=row["text"],
        start=int(row["start"]),
        end=int(row["end"]),
        sentences=tuple(Sentence(*map(int, s)) for s in row["sentences"]),
        tokens=int(row["tokens"]),
    )


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
