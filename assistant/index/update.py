"""Incremental update of a built index: cost in proportion to the documents added, changed or removed.

A full build (store.write_index) decodes and rewrites every chunk, rebuilds BM25 from every text and writes
every vector: 100 s at 10^5 chunks for an 18-chunk document. An update instead makes the new build from the
previous one, touching only the rows of the documents that changed:

- Rows. The chunks of removed and changed documents leave holes; the new chunks fill them (lowest first) and
  go on past the end; when fewer chunks come than went, the last rows move down into the remaining holes.
  Rows stay 0..n-1 (a row is the FAISS id, and every reader indexes by it) and nothing else moves, so there
  are no tombstones for search to filter. A document's chunks may then be out of row order (the chunk store
  orders them by position in the document where order matters).
- chunks.sqlite: a copy of the previous file (a file copy, not a decode) in which the dropped documents' rows
  are deleted, the moved rows renumbered and the new rows inserted (chunkstore.update_store).
- sentences.npy: the previous file with the new chunks' sentence vectors appended; per chunk row its span of
  sentence rows (in chunks.sqlite). Rows of removed chunks stay, unreferenced, until the next full build
  (COMPACT_FRACTION).
- vectors.faiss: exact index: the previous vectors moved with numpy and the new ones added. IVF: the previous
  trained index with the removed ids removed, the moved ids relabelled in place and the new vectors added
  (no re-training, no re-encoding; nprobe as measured at the last training).
- BM25: LexicalIndex.updated tokenises only the new chunks and rescores every posting with the new collection
  statistics (N, df, average length): scores equal a fresh build's (the same float32 arithmetic per posting).

Everything is written into a private build directory and published like a full build (store.publish): a reader
sees the old or the new build, a kill at any point leaves the old one. The builder falls back to a full build
(a compaction) when `full_build_reason` says so.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.index import chunkstore, npyio, termstats
from assistant.index.ann import reusable
from assistant.index.lexical import FILES as LEXICAL_FILES
from assistant.index.store import ARTIFACTS, IndexData, Manifest, new_build_dir, publish
from assistant.nlp import Value
from assistant.types import Chunk, Document

# A full build (compaction) once more than this fraction of sentences.npy is rows of removed chunks. The same
# fraction as the IVF re-training rule (ann.reusable: a quarter of the vectors new): an update copies the whole
# file, so garbage makes every later update and load slower by that fraction, and a quarter bounds it at 1.33x.
COMPACT_FRACTION = 0.25


@dataclass(frozen=True)
class RowPlan:
    """Where every chunk goes: `remap[old row]` (-1: dropped), `rows[i]` for new chunk i, the moves."""

    remap: np.ndarray
    rows: np.ndarray
    moves: list[tuple[int, int]]  # (old row, new row) of chunks that are kept but renumbered
    count: int


def plan_rows(count: int, dropped: np.ndarray, new: int) -> RowPlan:
    """Fill the holes of `dropped` rows (of `count`) with `new` chunks, then append; close remaining holes."""
    holes = np.unique(np.asarray(dropped, dtype=np.int64))
    final = count - len(holes) + new
    remap = np.arange(count, dtype=np.int64)
    remap[holes] = -1
    rows = np.concatenate([holes[:new], np.arange(count, count + max(0, new - len(holes)), dtype=np.int64)])
    left = holes[new:]  # holes the new chunks did not fill
    low = left[left < final]
    tail = np.arange(final, count, dtype=np.int64)
    tail = tail[remap[tail] >= 0] if len(tail) else tail  # live rows past the end: move into the low holes
    remap[tail] = low
    return RowPlan(remap, rows, list(zip(tail.tolist(), low.tolist(), strict=True)), final)


def full_build_reason(previous: IndexData, *, drop_docs: Sequence[str], new_chunks: int, new_sentences: int,
                      threshold: int) -> str:  # fmt: skip
    """Why this update needs a full build ("" when an incremental update will do)."""
    info = previous.manifest.vector_index
    kind = info.get("kind", "flat")
    rows_of = getattr(previous.chunks, "rows_of", None)
    if rows_of is None:
        return "the previous build is not a loaded chunk store"
    if previous.lexical is None or getattr(previous.lexical, "tf", None) is None:
        return "the previous build has no BM25 term frequencies"
    if previous.sentence_vectors.dtype != np.float16:
        return "the previous sentence vectors are not float16"
    dropped = rows_of(drop_docs)
    final = len(previous.chunks) - len(dropped) + new_chunks
    if (kind == "flat") != (final < max(threshold, 1)):
        return "the vector index changes kind (exact / approximate) at this size"
    since = int(info.get("changed_since_training", 0)) + len(dropped) + new_chunks
    if kind != "flat" and not reusable(previous.vectors, info, final, since):
        return "the approximate index needs re-training (a quarter of its vectors changed since, or its size doubled)"
    dropped_sentences = int(np.diff(previous.sentence_offsets)[dropped].sum()) if len(dropped) else 0
    total = int(previous.sentence_vectors.shape[0]) + new_sentences
    live = int(previous.sentence_offsets[-1]) - dropped_sentences + new_sentences
    if total and (total - live) / total > COMPACT_FRACTION:
        return f"over {COMPACT_FRACTION:.0%} of the sentence vectors would belong to removed chunks"
    return ""


def update_index(
    index_dir: Path,
    previous: IndexData,
    manifest: Manifest,
    *,
    drop_docs: Sequence[str],
    documents: Mapping[str, Document],
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    values: Sequence[Sequence[Value]],
    lexical_texts: list[str],
    timings: dict[str, float] | None = None,
) -> Path:
    """Publish `previous` minus `drop_docs` plus the new `chunks` (with their vectors, values and documents).

    `sentence_vectors` holds the new chunks' sentences in chunk order; `lexical_texts` their BM25 texts.
    `manifest` describes the result (files, counts); its vector_index and artifacts are filled here.
    """
    import faiss

    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        if timings is not None:
            timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    store_rows = getattr(previous.chunks, "rows_of", None)
    if store_rows is None:
        raise ValueError("an incremental update needs a loaded build (chunk store)")
    dropped = store_rows(drop_docs)
    plan = plan_rows(len(previous.chunks), dropped, len(chunks))
    lexical = previous.lexical.updated(plan.remap, lexical_texts, plan.rows)
    lap("bm25")
    tmp, build_id = new_build_dir(index_dir)
    try:
        index, manifest.vector_index = _updated_vectors(previous, plan, np.asarray(vectors, dtype=np.float32))
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        del index
        spans = _spans(previous, plan, [len(c.sentences) for c in chunks])
        _append_sentences(previous.path / "sentences.npy", tmp / "sentences.npy", sentence_vectors)
        shutil.copyfile(previous.path / chunkstore.FILE, tmp / chunkstore.FILE)
        chunkstore.update_store(tmp / chunkstore.FILE, drop_docs=drop_docs, moves=plan.moves, rows=plan.rows.tolist(),
                                documents=documents, chunks=chunks, values=values, spans=spans)  # fmt: skip
        lexical.save(tmp)
        # The answerer's statistics: the previous ones with the dropped and new chunks' terms (termstats).
        stats = termstats.write_update(tmp, previous, remap=plan.remap, rows=plan.rows, dropped=dropped.tolist(),
                                       chunks=chunks)  # fmt: skip
        final = publish(index_dir, tmp, build_id, manifest, [*ARTIFACTS, *LEXICAL_FILES, *stats])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lap("write")
    return final


def _updated_vectors(previous: IndexData, plan: RowPlan, new: np.ndarray) -> tuple[Any, dict[str, Any]]:
    import faiss

    old = previous.vectors
    info = dict(previous.manifest.vector_index)
    changed = len(new) + int((plan.remap < 0).sum())
    if info.get("kind", "flat") == "flat":
        matrix = np.zeros((plan.count, previous.manifest.dimension), dtype=np.float32)
        if old.ntotal:
            live = np.flatnonzero(plan.remap >= 0)
            matrix[plan.remap[live]] = old.reconstruct_n(0, old.ntotal)[live]
        matrix[plan.rows] = new
        flat = faiss.IndexFlatIP(previous.manifest.dimension)
        flat.add(matrix)
        return flat, {"kind": "flat"}
    ivf: Any = faiss.extract_index_ivf(old)  # the stubs lack DirectMap and several InvertedLists methods
    ivf.set_direct_map_type(faiss.DirectMap.NoMap)  # type: ignore[attr-defined]  # remove_ids and relabelling need no map; a load makes it
    removed = np.flatnonzero(plan.remap < 0).astype(np.int64)
    if len(removed):
        old.remove_ids(removed)
    if plan.moves:
        # Relabel in place: the stored codes stay as they are (no decode and re-encode, no re-assignment).
        src = np.asarray([a for a, _ in plan.moves], dtype=np.int64)
        dst = dict(plan.moves)
        lists: Any = ivf.invlists
        for list_no in range(ivf.nlist):
            size = lists.list_size(list_no)
            if not size:
                continue
            ids = faiss.rev_swig_ptr(lists.get_ids(list_no), size)
            for offset in np.flatnonzero(np.isin(ids, src)).tolist():
                code = faiss.rev_swig_ptr(lists.get_single_code(list_no, offset), lists.code_size).copy()
                lists.update_entry(list_no, offset, dst[int(ids[offset])], faiss.swig_ptr(code))
    if len(new):
        old.add_with_ids(np.ascontiguousarray(new), plan.rows.astype(np.int64))
    if old.ntotal != plan.count:
        raise RuntimeError(f"the updated vector index holds {old.ntotal} vectors for {plan.count} chunks")
    info["changed_since_training"] = int(info.get("changed_since_training", 0)) + changed
    info["training"] = "reused from the previous build"
    info["update"] = "incremental: removed, relabelled and added by id; nprobe as measured at the last training"
    return old, info


def _spans(previous: IndexData, plan: RowPlan, sizes: list[int]) -> np.ndarray:
    offsets = previous.sentence_offsets
    starts = previous.sentence_starts if previous.sentence_starts is not None else offsets[:-1]
    old_spans = np.stack([starts, starts + np.diff(offsets)], axis=1)
    spans = np.zeros((plan.count, 2), dtype=np.int64)
    live = np.flatnonzero(plan.remap >= 0)
    spans[plan.remap[live]] = old_spans[live]
    base = int(previous.sentence_vectors.shape[0])
    new_offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]) + base
    spans[plan.rows] = np.stack([new_offsets[:-1], new_offsets[1:]], axis=1)
    return spans


def _append_sentences(source: Path, target: Path, new: np.ndarray) -> None:
    """Copy a float16 .npy file with `new` rows appended: a byte copy of the old rows, never a decode."""
    fmt = np.lib.format
    with source.open("rb") as old:
        version = fmt.read_magic(old)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        with npyio.HEADER_LOCK:  # ast.literal_eval inside: not safe beside another thread's (npyio.py)
            shape, fortran, dtype = read_header(old)
        if dtype != np.float16 or fortran or len(shape) != 2 or (len(new) and new.shape[1] != shape[1]):
            raise ValueError(f"{source} is not a row-major float16 matrix of width {new.shape[1]}")
        header = {"descr": fmt.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False,
                  "shape": (shape[0] + len(new), shape[1])}  # fmt: skip
        with target.open("wb") as out:
            fmt.write_array_header_2_0(out, header) if version != (1, 0) else fmt.write_array_header_1_0(out, header)
            shutil.copyfileobj(old, out, 16 << 20)
            out.write(np.ascontiguousarray(new, dtype=np.float16).tobytes())
            out.flush()
            os.fsync(out.fileno())
