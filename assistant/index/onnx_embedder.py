"""The packaged sentence-transformers model run through onnxruntime, fp32 or dynamically quantised int8.

Why: importing sentence-transformers costs seconds before the first query, and on this 2-core machine
onnxruntime's int8 model embeds ~2.4x as many sentences per second as torch. `sentence-transformers[onnx]`
(optimum) cannot be installed beside the sentence-transformers we use, so the model is exported here, once,
from its local weights (never the hub): `torch.onnx.export` of the transformer, then
`onnxruntime.quantization.quantize_dynamic` for int8. The files are cached (see `default_cache_dir`) under
a name that includes the weights fingerprint, so a new model is exported again rather than reused.

Queries and documents then need only onnxruntime, numpy and the `tokenizers` library; pooling is done as
sentence-transformers does it for these models (mean over the attention mask, then L2 normalisation).
Models with another pooling or extra modules (Dense layers, ...) are refused: use the torch backend.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError
from assistant.index.embedder import resolve_model_path, weights_fingerprint

PRECISIONS = ("fp32", "int8")
# Bump when the export or quantisation recipe changes: the vectors change, so the fingerprint must too.
# 2: the transformer is exported with eager attention (an additive mask) rather than PyTorch's SDPA, whose
#    exported graph masks with Where/IsNaN: those took a third of the int8 model's time (onnxruntime profile);
#    the vectors are the same to 1e-6 in fp32, and int8 chunk encoding is ~25% faster.
# 3: the feed-forward down-projections stay fp32 (see `_down_projections`).
EXPORT_VERSION = 3
SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}


def default_cache_dir() -> Path:
    """Inside the virtual environment, beside the packaged model: shared by every index built from it."""
    return Path(sys.prefix) / "var" / "assistant-onnx"


def check_exportable(model_dir: Path) -> None:
    """Refuse models whose sentence-transformers pipeline this module does not reproduce."""
    modules_file = model_dir / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.exists() else []
    kinds = {m.get("type", "") for m in modules}
    pooling_file = model_dir / "1_Pooling" / "config.json"
    pooling = json.loads(pooling_file.read_text()) if pooling_file.exists() else {}
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if not kinds or not kinds <= SUPPORTED_MODULES or modes != ["pooling_mode_mean_tokens"]:
        raise ConfigError(
            f"The model in {model_dir} is not a mean-pooled transformer the ONNX backend can reproduce "
            f"(modules {sorted(kinds)}, pooling {modes}). Set ASSISTANT_EMBEDDING_BACKEND=torch."
        )


def export_onnx(model_dir: Path, target: Path, *, precision: str) -> Path:
    """Export the model's transformer to `target` (and quantise it for int8); atomic, safe across processes."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.exists():
            return target
        fp32 = target.with_name(target.name.replace("-int8", "-fp32"))
        if not fp32.exists():
            _export_fp32(model_dir, fp32)
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = target.with_suffix(f".tmp{os.getpid()}.onnx")
            try:
                # Per-channel weight scales: mean cosine to fp32 0.994 on corpus chunks, against 0.956 per tensor.
                with _quiet():
                    quantize_dynamic(
                        str(fp32),
                        str(tmp),
                        weight_type=QuantType.QInt8,
                        per_channel=True,
                        nodes_to_exclude=_down_projections(fp32),
                    )
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    return target


def _down_projections(model_file: Path) -> list[str]:
    """MatMul nodes whose constant weight maps more features to fewer: a transformer's FFN output projection.

    They read the GELU activations, whose outliers int8 ranges handle worst (Bondarenko et al., 2021,
    "Understanding and overcoming the challenges of efficient transformer quantization"). Kept in fp32, the
    dev gold's hybrid recall@1 is 0.774 against 0.762 with every MatMul quantised and 0.780 in fp32, for ~10%
    more encoding time. Found by shape, not by name, so any exported encoder is treated the same way.
    """
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and len(shape := shapes.get(node.input[1], ())) == 2 and shape[0] > shape[1]
    ]


def optimise_onnx(source: Path, target: Path) -> Path:
    """Save onnxruntime's graph optimisations (fusions, constant folding) so sessions need not redo them.

    "Extended" rather than "all": the extra level adds CPU-layout transformations that onnxruntime says
    may be specific to the machine that saved them (they concern convolutions, which MiniLM has none of).
    """
    import onnxruntime as ort
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if target.exists():
            return target
        tmp = target.with_suffix(f".tmp{os.getpid()}.onnx")
        try:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(tmp)
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _export_fp32(model_dir: Path, target: Path) -> None:
    # torch and transformers are needed only here, once per model; the query path never imports them.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    class Encoder(torch.nn.Module):
        # Positional inputs and one output: what the TorchScript exporter traces cleanly.
        def __init__(self) -> None:
            super().__init__()
            self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    model = Encoder().eval()
    sample = (
        torch.ones((2, 8), dtype=torch.long),
        torch.ones((2, 8), dtype=torch.long),
        torch.zeros((2, 8), dtype=torch.long),
    )
    names = ["input_ids", "attention_mask", "token_type_ids"]
    tmp = target.with_suffix(f".tmp{os.getpid()}.onnx")
    try:
        with torch.no_grad(), _quiet():
            torch.onnx.export(
                model,
                sample,
                str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,  # the TorchScript exporter needs no onnxscript
                do_constant_folding=True,
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _quiet() -> Iterator[None]:
    # The exporter and the quantiser warn about things that do not apply here (tracing, pre-processing).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class OnnxEmbedder:
    """Same interface as SentenceTransformerEmbedder; the ONNX file is exported on first use if missing."""

    def __init__(
        self,
        spec: str,
        *,
        precision: str = "int8",
        batch_size: int = 32,
        cache_dir: Path | None = None,
        threads: int = 0,
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"ONNX precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
        self.path = resolve_model_path(spec)
        check_exportable(self.path)
        self.name = spec
        self.precision = precision
        self.batch_size = batch_size
        self.threads = threads
        weights = weights_fingerprint(self.path)
        self.fingerprint = f"{weights}:onnx-{precision}-v{EXPORT_VERSION}"
        self.model_file = (cache_dir or default_cache_dir()) / f"{weights}-v{EXPORT_VERSION}-{precision}.onnx"
        config = (
            json.loads((self.path / "sentence_bert_config.json").read_text())
            if (self.path / "sentence_bert_config.json").exists()
            else {}
        )
        self.max_seq_length = int(config.get("max_seq_length") or 256)
        pooling = json.loads((self.path / "1_Pooling" / "config.json").read_text())
        self.dimension = int(pooling["word_embedding_dimension"])
        self._session: Any = None
        self._input_names: list[str] = []
        self._tokenizer: Any = None
        self._counter: Any = None
        self._lock = threading.Lock()

    @property
    def max_tokens(self) -> int:
        return self.max_seq_length

    @property
    def optimised_file(self) -> Path:
        return self.model_file.with_name(self.model_file.name.replace(".onnx", ".opt.onnx"))

    def prepare(self) -> Path:
        """Export, quantise and graph-optimise the model now if not cached yet; returns the file sessions load."""
        if not self.optimised_file.exists():
            if not self.model_file.exists():
                export_onnx(self.path, self.model_file, precision=self.precision)
            optimise_onnx(self.model_file, self.optimised_file)
        return self.optimised_file

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                model_file = self.prepare()
                options = ort.SessionOptions()
                # Optimised once, offline (optimise_onnx): a session then starts in about half the time.
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                if self.threads:
                    options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                # No busy-waiting between operators: on a shared 2-core machine spinning threads steal the time
                # the other thread needs (64 chunks: 1.4-1.6 s without spinning, 2.0-2.1 s with, under load).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
                tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
                # tokenizer.json ships fixed 128-token padding; the model reads max_seq_length, padded per batch.
                tokenizer.enable_truncation(max_length=self.max_seq_length)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                self._input_names = [i.name for i in session.get_inputs()]
                self._tokenizer = tokenizer
                self._session = session
        return self._session, self._tokenizer

    def with_threads(self, threads: int) -> OnnxEmbedder:
        """The same model on a session of its own with `threads` intra-op threads (the rest is shared).

        The index build encodes beside the spaCy worker process: with both of the encoder's threads contending
        for the cores the worker's, the worker got a fraction of one and the build then waited for it
        (assistant/index/builder.py has the figures).
        """
        other = copy.copy(self)
        other.threads = threads
        other._session = None
        other._input_names = []
        other._lock = threading.Lock()
        return other

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        session, tokenizer = self._load()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Length-sorted batches waste less on padding; results go back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {n: feed[n] for n in self._input_names})[0]
            out[rows] = mean_pool_normalise(hidden, mask)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, special tokens included (no truncation), as the torch backend counts them."""
        if not texts:
            return []
        if self._counter is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling (tokens under the attention mask) followed by L2 normalisation."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


if __name__ == "__main__":
    # `make setup`: export (and quantise) the configured model now rather than at the first index build.
    from assistant.config import Settings
    from assistant.index.embedder import create_embedder

    embedder = create_embedder(Settings.from_env())
    prepare = getattr(embedder, "prepare", None)  # (run as __main__, this module's class is another object)
    if prepare is not None:
        print(f"ONNX model ready: {prepare()}")
