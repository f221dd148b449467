"""Cross-validation report: cv.json, cv.md and the reliability diagram of `Answer.confidence`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.training.crossval import CVReport

_COLUMNS = (
    ("answer_key_accuracy", "key acc."),
    ("recall@1", "R@1"),
    ("recall@5", "R@5"),
    ("noans_abstain_rate", "no-ans abstained"),
    ("hasans_false_abstain_rate", "false abstain"),
    ("answer_words_mean", "words"),
    ("questions", "questions"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def cv_table(report: CVReport) -> str:
    """Markdown: overall and per-type cross-validated figures."""
    head = "| | " + " | ".join(label for _, label in _COLUMNS) + " |"
    rule = "|---" * (len(_COLUMNS) + 1) + "|"
    lines = [head, rule, "| **all (CV)** | " + " | ".join(_cell(report.summary.get(k)) for k, _ in _COLUMNS) + " |"]
    for kind, summary in report.per_type.items():
        lines.append(f"| {kind} | " + " | ".join(_cell(summary.get(k)) for k, _ in _COLUMNS) + " |")
    return "\n".join(lines)


def write_cv_report(report: CVReport, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "cv.json"
    tmp = out / ".cv.json.tmp"
    tmp.write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(data)
    lines = [
        "# Answer scorer: leave-one-document-out cross-validation",
        "",
        "Each fold fits the scorer (and its abstention threshold) on the other documents' questions and answers the "
        "held-out ones with the same `extractive_answer` that `Assistant.answer` runs, over the same retrieval. "
        "These are out-of-sample figures.",
        "",
        cv_table(report),
        "",
        "| fold (held-out document) | questions | threshold |",
        "|---|---|---|",
        *(f"| {doc} | {n} | {report.thresholds[doc]:.3f} |" for doc, n in report.folds.items()),
        "",
        "Reliability of `confidence` (probability that the documents answer):",
        "",
        "| bin | questions | mean confidence | share answerable |",
        "|---|---|---|---|",
        *(
            f"| {r['low']:.1f}–{r['high']:.1f} | {r['count']} | {r['mean_confidence']:.3f} "
            f"| {r['answerable_share']:.3f} |"
            for r in report.reliability
        ),
        "",
        f"Wall time: {report.seconds:.0f} s.",
    ]
    md = out / "cv.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    written = [data, md]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        xs = [r["mean_confidence"] for r in report.reliability]
        ys = [r["answerable_share"] for r in report.reliability]
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        ax.plot(xs, ys, marker="o")
        for x, y, r in zip(xs, ys, report.reliability, strict=True):
            ax.annotate(str(r["count"]), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_xlabel("confidence (cross-validated)")
        ax.set_ylabel("share of questions the documents answer")
        ax.set_title("Reliability of Answer.confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        fig.tight_layout()
        plot = out / "cv_reliability.png"
        fig.savefig(plot, dpi=110)
        plt.close(fig)
        written.append(plot)
    except ImportError:  # pragma: no cover - matplotlib is a dependency; a broken install only loses the plot
        pass
    return written
