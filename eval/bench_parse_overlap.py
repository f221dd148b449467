"""Does the spaCy parse in a worker process pay off? The build's encode + parse stages, with and without it.

    python eval/bench_parse_overlap.py [--index-dir DIR] [--runs 2]

Takes the chunks of a built index and runs what a fresh build runs after chunking: chunk vectors, distinct
sentence vectors and the spaCy parse, once with the parse in a worker process beside the embedding (as
`assistant.index.builder` does from `assistant.nlp.WORKER_MIN_TEXTS` chunks up) and once one after the other in
this process. The embedding model is loaded before the clock starts; spaCy's load is inside both (the worker
loads its own copy; in-process, the first run loads it). Alternates the two, prints wall seconds per run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from assistant import nlp
from assistant.config import Settings
from assistant.index.embedder import create_embedder
from assistant.index.store import load_index
from assistant.ingest.chunker import embedding_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    settings = Settings.from_env(**({"index_dir": args.index_dir} if args.index_dir else {}))
    chunks = list(load_index(settings.index_dir).chunks)
    texts = [embedding_text(c) for c in chunks]
    sentences = list(dict.fromkeys(c.sentence_text(s) for c in chunks for s in c.sentences))
    raw = [c.text for c in chunks]
    embedder = create_embedder(settings)
    embedder.embed_documents(["load the model before the clock starts"])
    threshold = nlp.WORKER_MIN_TEXTS
    seconds: dict[str, list[float]] = {"worker": [], "in process": []}
    print(f"{len(chunks)} chunks, {len(sentences)} distinct sentences")
    for _ in range(args.runs):
        for label in seconds:
            nlp.WORKER_MIN_TEXTS = threshold if label == "worker" else len(raw) + 1
            started = time.perf_counter()
            job = nlp.ParseJob(raw)
            embedder.embed_documents(texts)
            embedder.embed_documents(sentences)
            job.result()
            seconds[label].append(time.perf_counter() - started)
            print(f"{label:10} {seconds[label][-1]:6.1f} s", flush=True)
    for label, values in seconds.items():
        print(f"{label:10} median {statistics.median(values):6.1f} s over {len(values)} runs")


if __name__ == "__main__":
    main()
