"""Gold-question files (JSONL): loading with line-numbered validation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError

TYPES = ("factoid", "numeric", "date", "list", "table", "explanatory", "unanswerable")


@dataclass(frozen=True, slots=True)
class GoldQuestion:
    id: str
    question: str
    answer: str
    answer_keys: tuple[str, ...]
    evidence: tuple[str, ...]
    doc: str | None
    type: str

    @property
    def answerable(self) -> bool:
        return self.doc is not None


def gold_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_gold(path: Path) -> list[GoldQuestion]:
    """Read and validate a gold file; any bad line raises AssistantError naming the line and field."""
    questions: list[GoldQuestion] = []
    seen: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AssistantError(f"Cannot read gold file {path} ({exc}).") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise AssistantError(f"{where}: not valid JSON ({exc.args[0]}).") from exc
        if not isinstance(row, dict):
            raise AssistantError(f"{where}: each line must be a JSON object.")
        for name, kind in (("id", str), ("question", str), ("answer", str), ("type", str)):
            if not isinstance(row.get(name), kind) or (name != "answer" and not row[name].strip()):
                raise AssistantError(f"{where}: field {name!r} must be a non-empty string.")
        for name in ("answer_keys", "evidence"):
            value = row.get(name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise AssistantError(f"{where}: field {name!r} must be a list of strings.")
        if row.get("doc") is not None and not isinstance(row["doc"], str):
            raise AssistantError(f"{where}: field 'doc' must be a file name or null.")
        if row["type"] not in TYPES:
            raise AssistantError(f"{where}: field 'type' must be one of {', '.join(TYPES)}; got {row['type']!r}.")
        if (row["type"] == "unanswerable") != (row.get("doc") is None):
            raise AssistantError(
                f"{where}: field 'doc' must be null exactly when 'type' is 'unanswerable' "
                f"(type {row['type']!r}, doc {row.get('doc')!r})."
            )
        if row.get("doc") is not None:
            for name in ("answer_keys", "evidence"):
                if not [v for v in row[name] if v.strip()]:
                    raise AssistantError(
                        f"{where}: field {name!r} must hold at least one string for an answerable "
                        "question (it is what the answer and retrieval are scored against)."
                    )
        if row["id"] in seen:
            raise AssistantError(f"{where}: field 'id' repeats {row['id']!r} from line {seen[row['id']]}.")
        seen[row["id"]] = number
        questions.append(
            GoldQuestion(
                id=row["id"],
                question=row["question"],
                answer=row["answer"],
                answer_keys=tuple(row["answer_keys"]),
                evidence=tuple(row["evidence"]),
                doc=row.get("doc"),
                type=row["type"],
            )
        )
    if not questions:
        raise AssistantError(f"Gold file {path} holds no questions.")
    return questions
