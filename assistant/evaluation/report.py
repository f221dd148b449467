"""Write an Evaluation out: report.json (everything), report.md (for people), PNG plots (matplotlib)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from assistant.evaluation.gold import TYPES
from assistant.evaluation.harness import Evaluation, QuestionResult

# The comparison table: (key in the summary, column label, format).
TABLE = (
    ("recall@1", "R@1", "{:.3f}"),
    ("recall@5", "R@5", "{:.3f}"),
    ("recall@10", "R@10", "{:.3f}"),
    ("mrr@10", "MRR@10", "{:.3f}"),
    ("ndcg@10", "nDCG@10", "{:.3f}"),
    ("context_chars@5", "ctx chars@5", "{:.0f}"),
    ("answer_key_accuracy", "key acc.", "{:.3f}"),
    ("token_f1", "token F1", "{:.3f}"),
    ("answer_words_mean", "words", "{:.1f}"),
    ("citation_precision", "cit. prec.", "{:.3f}"),
    ("citation_recall", "cit. rec.", "{:.3f}"),
    ("quotes_verbatim", "verbatim", "{:.3f}"),
    ("noans_abstain_rate", "no-ans abstain", "{:.3f}"),
    ("hasans_false_abstain_rate", "false abstain", "{:.3f}"),
    ("latency_ms_p50", "p50 ms", "{:.1f}"),
    ("latency_ms_p95", "p95 ms", "{:.1f}"),
    ("build_s", "build s", "{:.1f}"),
)
JSON_METRICS = [key for key, _, _ in TABLE] + [
    "out_of_range_markers", "retrieve_ms_p50", "retrieve_ms_p95", "answer_ms_p50", "answer_ms_p95",
]  # fmt: skip
PLOTS = {
    "metrics": "metrics_by_system.png",
    "types": "accuracy_by_type.png",
    "abstention": "abstention_curve.png",
    "latency": "latency_by_stage.png",
}


def _fmt(value: Any, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def to_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        **evaluation.environment,
        "systems": {
            name: {key: _round(evaluation.summary(name)[key]) for key in JSON_METRICS} for name in evaluation.systems
        },
        "by_type": {
            name: {t: {k: _round(v) for k, v in s.items()} for t, s in by_type(evaluation, name).items()}
            for name in evaluation.systems
        },
        "abstention_curves": evaluation.curves,
        "questions": [r.to_dict() for r in evaluation.results],
    }


def by_type(evaluation: Evaluation, name: str) -> dict[str, dict[str, float | None]]:
    rows = evaluation.for_system(name)
    present = [t for t in TYPES if any(r.question.type == t for r in rows)]
    return {t: evaluation.summary(name, [r for r in rows if r.question.type == t]) for t in present}


def write_report(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    """Write report.json, report.md and the plots into `out_dir` (created); return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        _write(out_dir / "report.json", json.dumps(to_json(evaluation), indent=1, ensure_ascii=False) + "\n"),
    ]
    written += write_plots(evaluation, out_dir)
    written.append(_write(out_dir / "report.md", to_markdown(evaluation)))
    return written


def _write(path: Path, text: str) -> Path:
    """Atomic: a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for everyone
    os.replace(tmp, path)
    return path


def comparison_table(evaluation: Evaluation) -> str:
    lines = [
        "| system | " + " | ".join(label for _, label, _ in TABLE) + " |",
        "|---|" + "---:|" * len(TABLE),
    ]
    for name in evaluation.systems:
        summary = evaluation.summary(name)
        lines.append(f"| {name} | " + " | ".join(_fmt(summary[k], f) for k, _, f in TABLE) + " |")
    return "\n".join(lines)


def type_table(evaluation: Evaluation) -> str:
    types = [t for t in TYPES if any(q.type == t for q in evaluation.gold)]
    counts = {t: sum(q.type == t for q in evaluation.gold) for t in types}
    lines = [
        "| type (n) | " + " | ".join(evaluation.systems) + " |",
        "|---|" + "---:|" * len(evaluation.systems),
    ]
    tables = {name: by_type(evaluation, name) for name in evaluation.systems}
    for t in types:
        if t == "unanswerable":
            cells = [_fmt(tables[name][t]["noans_abstain_rate"], "{:.2f}") for name in evaluation.systems]
        else:
            cells = [
                _fmt(tables[name][t]["answer_key_accuracy"], "{:.2f}") + _fmt(tables[name][t]["recall@5"], " / {:.2f}")
                for name in evaluation.systems
            ]
        lines.append(f"| {t} ({counts[t]}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _failure(result: QuestionResult) -> str:
    q, a = result.question, result.answer
    answered = " ".join(a.text.split())
    if len(answered) > 600:
        answered = answered[:600] + " …"
    if not q.answerable:
        why = "answered an unanswerable question"
    elif a.abstained:
        why = "abstained"
    else:
        missing = [k for k in q.answer_keys if k not in result.keys_found]
        why = "missing key(s): " + ", ".join(f"`{k}`" for k in missing)
    rank = result.relevant_rank
    retrieval = ""
    if q.answerable:
        retrieval = f" Evidence retrieved at rank {rank}." if rank else " Evidence not in the top 10."
    return (
        f"- **{q.id}** ({q.type}) {q.question}\n"
        f"  - expected: {q.answer or '(not in the documents)'}"
        + (f" — keys {', '.join(f'`{k}`' for k in q.answer_keys)}" if q.answer_keys else "")
        + f"\n  - answered: {answered}\n  - why: {why}.{retrieval}\n"
    )


def to_markdown(evaluation: Evaluation) -> str:
    env = evaluation.environment
    gold = env.get("gold", {})
    index = env.get("index", {})
    answerable = sum(q.answerable for q in evaluation.gold)
    parts = [
        "# Evaluation report\n",
        f"Gold `{gold.get('path')}` (sha256 `{str(gold.get('sha256', ''))[:12]}`): {len(evaluation.gold)} questions, "
        f"{answerable} answerable, {len(evaluation.gold) - answerable} unanswerable. "
        f"Index: {index.get('documents')} documents, {index.get('chunks')} chunks, model `{index.get('model')}`. "
        f"Created {env.get('created')} on {env.get('cpus')} CPUs, Python {env.get('python')}.\n",
        "## Systems compared\n",
        comparison_table(evaluation) + "\n",
        "Retrieval metrics count a chunk as relevant when it holds an evidence quote (answerable questions only; "
        "depth 10). Answer-key accuracy and token F1 are over answerable questions (an abstention scores 0); "
        "words are over answered ones. Citation precision is the share of (sentence, marker) pairs whose passage "
        "supports the sentence; recall the share of answer sentences with at least one supporting citation "
        "(abstentions excluded). Latency is warm, per question, total of retrieval and answering.\n",
        f"![metrics by system]({PLOTS['metrics']}) ![accuracy by type]({PLOTS['types']})\n",
        "## By question type\n",
        "Answer-key accuracy / recall@5 (unanswerable: abstain rate).\n",
        type_table(evaluation) + "\n",
    ]
    if evaluation.curves:
        parts += ["## Abstention as the threshold moves\n", _curve_table(evaluation) + "\n"]
        parts.append(f"![abstention curve]({PLOTS['abstention']})\n")
    parts += ["## Latency per stage (ms, p50 / p95)\n", _latency_table(evaluation) + "\n"]
    parts.append(f"![latency by stage]({PLOTS['latency']})\n")
    parts.append("## Failed questions\n")
    for name in evaluation.systems:
        failed = [r for r in evaluation.for_system(name) if not r.correct]
        parts.append(f"### {name}: {len(failed)} of {len(evaluation.for_system(name))}\n")
        parts.append("".join(_failure(r) for r in failed) if failed else "None.\n")
    return "\n".join(parts)


def _curve_table(evaluation: Evaluation) -> str:
    names = list(evaluation.curves)
    lines = [
        "| threshold | " + " | ".join(f"{n}: unanswerable / answerable abstained" for n in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for i, point in enumerate(evaluation.curves[names[0]]):
        at = [evaluation.curves[n][i] for n in names]
        cells = [f"{p['noans_abstain_rate']:.2f} / {p['hasans_false_abstain_rate']:.2f}" for p in at]
        lines.append(f"| {point['threshold']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _latency_table(evaluation: Evaluation) -> str:
    lines = ["| system | retrieve | answer | total |", "|---|---:|---:|---:|"]
    for name in evaluation.systems:
        s = evaluation.summary(name)
        cells = [
            f"{s['retrieve_ms_p50']:.1f} / {s['retrieve_ms_p95']:.1f}",
            f"{s['answer_ms_p50']:.1f} / {s['answer_ms_p95']:.1f}",
            f"{s['latency_ms_p50']:.1f} / {s['latency_ms_p95']:.1f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_plots(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt
    import numpy as np

    names = evaluation.systems
    summaries = {n: evaluation.summary(n) for n in names}
    written: list[Path] = []

    def save(fig: Any, key: str) -> None:
        path = out_dir / PLOTS[key]
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    shown = [
        ("recall@1", "R@1"), ("recall@5", "R@5"), ("mrr@10", "MRR@10"), ("answer_key_accuracy", "key accuracy"),
        ("token_f1", "token F1"), ("citation_precision", "citation prec."), ("citation_recall", "citation rec."),
        ("noans_abstain_rate", "no-answer abstain"), ("hasans_false_abstain_rate", "false abstain"),
    ]  # fmt: skip
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(1, len(names))
    x = np.arange(len(shown))
    for i, name in enumerate(names):
        values = [summaries[name][k] or 0.0 for k, _ in shown]
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    ax.set_xticks(x, [label for _, label in shown], rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Metrics by system")
    ax.legend(fontsize=8, ncols=min(5, len(names)))
    save(fig, "metrics")

    types = [t for t in by_type(evaluation, names[0]) if t != "unanswerable"]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(types))
    for i, name in enumerate(names):
        table = by_type(evaluation, name)
        ax.bar(x + i * width - 0.4 + width / 2, [table[t]["answer_key_accuracy"] or 0.0 for t in types], width,
               label=name)  # fmt: skip
    ax.set_xticks(x, types)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("answer-key accuracy")
    ax.set_title("Answer-key accuracy by question type")
    ax.legend(fontsize=8, ncols=min(5, len(names)))
    save(fig, "types")

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in evaluation.curves.items():
        t = [p["threshold"] for p in points]
        (line,) = ax.plot(t, [p["noans_abstain_rate"] for p in points], marker="o", label=f"{name}: unanswerable")
        ax.plot(t, [p["hasans_false_abstain_rate"] for p in points], marker="x", linestyle="--",
                color=line.get_color(), label=f"{name}: answerable")  # fmt: skip
    threshold = evaluation.settings.abstain_threshold
    model = evaluation.assistant.scorer.model if evaluation.assistant is not None else None
    if threshold is None and model is not None:
        threshold = model.threshold  # the learned one
    if threshold is not None:
        ax.axvline(threshold, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("abstain threshold on answerability (grey: in use)")
    ax.set_ylabel("share abstained")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Abstention as the threshold moves")
    if evaluation.curves:
        ax.legend(fontsize=7)
    save(fig, "abstention")

    fig, ax = plt.subplots(figsize=(8, 4))
    stages = ("retrieve", "answer")
    slots = np.arange(len(names))
    bottom = np.zeros(len(names))
    for stage in stages:
        heights = np.array([summaries[n][f"{stage}_ms_p50"] or 0.0 for n in names])
        ax.bar(slots, heights, 0.6, bottom=bottom, label=f"{stage} (p50)")
        bottom += heights
    p95 = [float(summaries[n]["latency_ms_p95"] or 0.0) for n in names]
    ax.scatter(slots, p95, color="black", marker="_", s=400, label="total p95")
    ax.set_xticks(slots, names, rotation=15)
    ax.set_ylabel("ms per question (warm)")
    ax.set_title("Latency per stage")
    ax.legend(fontsize=8)
    save(fig, "latency")
    return written
