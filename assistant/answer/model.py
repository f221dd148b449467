"""The learned answer scorer: logistic models over answer/features.py, read from answer/weights.json.

Two models: one scores each candidate unit (probability that it quotes the evidence), one judges whether
the question is answered at all (probability that the documents answer it, from the best candidates).
The weights are written only by `assistant train` (`make train`) as JSON: the feature lists, a fingerprint
of them, the standardisation and the coefficients. A file that is missing, damaged or made for other
features is refused with a message naming `make train`; there is no silent fallback to untrained weights.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answer.features import ANSWERABILITY_FEATURES, UNIT_FEATURES
from assistant.errors import ModelError

WEIGHTS_PATH = Path(__file__).with_name("weights.json")
WEIGHTS_VERSION = 1
RETRAIN = "Run `make train` (or `assistant train`) to fit the answer scorer on the gold questions."


def fingerprint(unit: Sequence[str] = UNIT_FEATURES, answerability: Sequence[str] = ANSWERABILITY_FEATURES) -> str:
    """Identifies the feature lists (and their order) the code computes."""
    text = json.dumps({"version": WEIGHTS_VERSION, "unit": list(unit), "answerability": list(answerability)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Logistic:
    """A standardised logistic regression: p = sigmoid(((x - mean) / scale) . coef + intercept)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 8) for v in self.mean],
            "scale": [round(float(v), 8) for v in self.scale],
            "coef": [round(float(v), 8) for v in self.coef],
            "intercept": round(float(self.intercept), 8),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], expected: Sequence[str]) -> Logistic:
        features = tuple(data["features"])
        if features != tuple(expected):
            raise ValueError("feature list differs from the code's")
        arrays = [np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (len(features),) or not np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("weights of the wrong shape or not finite")
        if np.any(arrays[1] <= 0):
            raise ValueError("non-positive scale")
        return cls(features, arrays[0], arrays[1], arrays[2], float(data["intercept"]))


@dataclass(frozen=True)
class AnswerModel:
    unit: Logistic
    answerability: Logistic
    threshold: float  # abstain when the answerability probability is below this
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": WEIGHTS_VERSION,
            "fingerprint": fingerprint(self.unit.features, self.answerability.features),
            "unit": self.unit.to_json(),
            "answerability": self.answerability.to_json(),
            "threshold": round(float(self.threshold), 6),
            "meta": self.meta,
        }

    def save(self, path: Path = WEIGHTS_PATH) -> None:
        text = json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def load_model(path: Path = WEIGHTS_PATH) -> AnswerModel:
    """Read and check the weights file; raises ModelError (naming `make train`) on any problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"The answer scorer's weights {path} are missing. {RETRAIN}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"The answer scorer's weights {path} cannot be read ({exc}). {RETRAIN}") from exc
    if not isinstance(data, dict) or data.get("version") != WEIGHTS_VERSION:
        raise ModelError(f"The answer scorer's weights {path} are from another version. {RETRAIN}")
    if data.get("fingerprint") != fingerprint():
        raise ModelError(
            f"The answer scorer's weights {path} were trained for other features "
            f"(fingerprint {data.get('fingerprint')!r}, the code computes {fingerprint()!r}). {RETRAIN}"
        )
    try:
        unit = Logistic.from_json(data["unit"], UNIT_FEATURES)
        answerability = Logistic.from_json(data["answerability"], ANSWERABILITY_FEATURES)
        threshold = float(data["threshold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"The answer scorer's weights {path} are damaged ({exc}). {RETRAIN}") from exc
    if not 0.0 <= threshold <= 1.0:
        raise ModelError(f"The answer scorer's threshold in {path} is not a probability. {RETRAIN}")
    return AnswerModel(unit, answerability, threshold, dict(data.get("meta") or {}))
