"""`assistant index | search`: the command line. Catches AssistantError and prints its advice."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from assistant.config import ANSWER_MODES, PROJECT_ROOT, SEARCH_MODES, Settings
from assistant.errors import AssistantError
from assistant.sanitize import clean_text


def _settings(index_dir: Path | None, store: str | None = None) -> Settings:
    return Settings.from_env(index_dir=index_dir, store=store)


_STORE_HELP = "Index in a Milvus server: milvus://HOST:PORT[/collection] (default: ASSISTANT_STORE, else index/)."


def _fail_nicely(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AssistantError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            click.echo("Interrupted; the previous index (if any) is unchanged.", err=True)
            sys.exit(130)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@contextmanager
def _progress_bar(labels: dict[str, str] | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr; yields progress(stage, done, total), one bar per stage."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    labels = labels or {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=False,
    ) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


@click.group()
def main() -> None:
    """Answer questions about the EU migration-policy documents, with cited passages."""


@main.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--index-dir", type=click.Path(path_type=Path), help="Where the index lives (default: index/).")
@click.option("--rebuild", is_flag=True, help="Ignore the existing index and embed everything again.")
@click.option("--store", help=_STORE_HELP)
@_fail_nicely
def index_cmd(paths: tuple[Path, ...], index_dir: Path | None, rebuild: bool, store: str | None) -> None:
    """Build or update the index from PATHS (files or folders; default: the corpus folder)."""
    from assistant.core import Assistant

    settings = _settings(index_dir, store)
    labels = {
        "files": "Reading and chunking files",
        "embed": "Embedding chunks",
        "sentences": "Embedding sentences",
        "parse": "Parsing entities",
    }
    with _progress_bar(labels) as progress:
        report = Assistant.build(settings, paths=list(paths) or None, rebuild=rebuild, progress=progress)
    verb = "Updated" if report.wrote else "Index is up to date:"
    click.echo(
        f"{verb} {report.documents} documents, {report.chunks} chunks "
        f"(mean {report.mean_tokens} / max {report.max_tokens} tokens) in {report.seconds:.2f} s "
        f"-> {settings.store or settings.index_dir}"
    )
    for label, names in (("added", report.added), ("changed", report.changed), ("removed", report.removed)):
        if names:
            click.echo(f"  {label}: {', '.join(names)}")
    if report.embedded_chunks:
        click.echo(f"  embedded {report.embedded_chunks} new chunks and {report.embedded_sentences} distinct sentences")
    if report.timings:
        stages = (f"{stage.replace('_', ' ')} {sec:.2f} s" for stage, sec in report.timings.items())
        click.echo("  time: " + ", ".join(stages))
    for warning in report.warnings:
        click.echo(f"  warning: {warning}", err=True)
    if report.skipped:
        click.echo(f"Skipped {len(report.skipped)} file(s):", err=True)
        for name, reason in sorted(report.skipped.items()):
            click.echo(f"  {name}: {reason}", err=True)


@main.command("search")
@click.argument("query")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--mode", type=click.Choice(SEARCH_MODES), default="hybrid", show_default=True)
@click.option("--doc", "docs", multiple=True, help="Only search this document (file name); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.option("--index-dir", type=click.Path(path_type=Path))
@click.option("--store", help=_STORE_HELP)
@_fail_nicely
def search_cmd(
    query: str, top_k: int, mode: str, docs: tuple[str, ...], as_json: bool, index_dir: Path | None, store: str | None
) -> None:
    """Show the passages that best match QUERY."""
    from assistant.core import Assistant
    from assistant.retrieve import Filters

    query, docs = clean_text(query), tuple(clean_text(d) for d in docs)
    if not as_json:
        click.echo("Loading the index and the embedding model…", err=True)
    assistant = Assistant.load(settings=_settings(index_dir, store))
    hits = assistant.search(query, top_k=top_k, mode=mode, filters=Filters(docs=docs) if docs else None)
    if as_json:
        click.echo(json.dumps({"query": query, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("No passages found.")
    for hit in hits:
        c = hit.chunk
        where = f"{c.title} ({c.date})" + (f", p. {c.page}" if c.page else "")
        click.echo(click.style(f"[{hit.rank}] {where}", bold=True) + f"  score {hit.score:.4f}")
        if c.section:
            click.echo(f"    {c.section}")
        click.echo("    " + c.text.replace("\n", "\n    "))
        click.echo()


@main.command("ask")
@click.argument("question")
@click.option("--mode", type=click.Choice(ANSWER_MODES), help="Answer mode (default: ASSISTANT_MODE or extractive).")
@click.option("--top-k", type=click.IntRange(1, 100), help="Passages to retrieve (default: 5).")
@click.option("--doc", "docs", multiple=True, help="Only use this document (file name); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the Answer as JSON.")
@click.option("--index-dir", type=click.Path(path_type=Path))
@click.option("--store", help=_STORE_HELP)
@_fail_nicely
def ask_cmd(
    question: str,
    mode: str | None,
    top_k: int | None,
    docs: tuple[str, ...],
    as_json: bool,
    index_dir: Path | None,
    store: str | None,
) -> None:
    """Answer QUESTION with numbered, verified citations (or say the documents don't answer it).

    A question that starts with "-" goes after "--":  assistant ask -- "-5 % in returns: why?"
    """
    from assistant.spacy_load import preload

    preload()  # the question's parser loads on a thread while the index loads and the question is embedded
    from assistant.core import Assistant
    from assistant.retrieve import Filters

    question, docs = clean_text(question), tuple(clean_text(d) for d in docs)
    if not as_json:
        # The first answer of a process loads the embedding model (seconds): say so instead of sitting silent.
        click.echo("Loading the index and the embedding model…", err=True)
    assistant = Assistant.load(settings=_settings(index_dir, store))
    filters = Filters(docs=docs) if docs else None
    if docs:
        unknown = sorted(set(docs) - set(assistant.data.documents))
        if unknown:
            known = ", ".join(sorted(assistant.data.documents))
            raise click.BadParameter(
                f"not in the index: {', '.join(unknown)}. Indexed documents: {known}", param_hint="--doc"
            )
    result = assistant.answer(question, top_k=top_k, mode=mode, filters=filters)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    if result.notice:
        click.echo(click.style(f"Note: {result.notice}", fg="yellow"), err=True)
    click.echo(result.text)
    for sentence in result.sentences:
        if not sentence.supported:
            why = sentence.reason or "not supported by its sources"
            click.echo(click.style(f"  ({why}: {sentence.text})", fg="red"))
    if result.citations:
        click.echo()
        click.echo("See also:" if result.abstained else "Sources:")
    for c in result.citations:
        where = f"{c.title} ({c.date})" + (f", p. {c.page}" if c.page else "")
        click.echo(click.style(f"[{c.marker}] {where}", bold=True))
        if c.section:
            click.echo(f"    {c.section}")
        click.echo(f'    "{c.quote}"')
    if result.abstained and result.reason and result.reason not in result.text:
        click.echo(f"\n(Why: {result.reason.rstrip('.')}.)")


@main.command("eval")
@click.option(
    "--gold", type=click.Path(path_type=Path, dir_okay=False), default=PROJECT_ROOT / "eval" / "gold" / "dev.jsonl",
    show_default=True, help="Gold questions (JSONL: id, question, answer, answer_keys, evidence, doc, type).",
)  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("eval/reports/latest"),
              show_default=True, help="Where report.json, report.md and the plots go.")  # fmt: skip
@click.option(
    "--systems", multiple=True,
    help="Systems to compare, comma-separated or repeated: assistant, dense-only, bm25-only, llm, "
    "langchain-baseline (default: all; llm only when configured).",
)  # fmt: skip
@click.option("--top-k", type=click.IntRange(1, 100), help="Passages each answer reads (default: 5).")
@click.option("--index-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Reuse this built index instead of building a fresh one in a temporary directory.")  # fmt: skip
@click.option("--cv", is_flag=True, help="Also cross-validate the answer scorer (leave one document out) into OUT.")
@click.option("--store", help="Evaluate over a Milvus server: milvus://HOST:PORT[/collection] (brought up to date "
              "with the corpus first; compare with a run without --store for the FAISS backend).")  # fmt: skip
@_fail_nicely
def eval_cmd(
    gold: Path,
    out: Path,
    systems: tuple[str, ...],
    top_k: int | None,
    index_dir: Path | None,
    cv: bool,
    store: str | None,
) -> None:
    """Score the assistant, its ablations and a LangChain baseline on GOLD; write a report to OUT."""
    from assistant.evaluation.harness import evaluate
    from assistant.evaluation.report import comparison_table, write_report

    names = [n.strip() for item in systems for n in item.split(",") if n.strip()] or None
    with _progress_bar() as progress:
        evaluation = evaluate(gold, settings=_settings(None, store), systems=names, top_k=top_k, index_dir=index_dir,
                              progress=progress)  # fmt: skip
    written = write_report(evaluation, out)
    click.echo(comparison_table(evaluation))
    if cv and evaluation.assistant is not None:
        from assistant.evaluation.gold import load_gold
        from assistant.training import cross_validate
        from assistant.training.report import cv_table, write_cv_report

        with _progress_bar() as progress:
            report = cross_validate(evaluation.assistant, load_gold(gold), progress=progress)
        click.echo(cv_table(report))
        written += write_cv_report(report, out)
    click.echo(f"\nWrote {', '.join(str(p) for p in written)}")


@main.command("train")
@click.option("--gold", type=click.Path(path_type=Path, dir_okay=False), show_default=True,
              default=PROJECT_ROOT / "eval" / "gold" / "dev.jsonl",
              help="Gold questions to fit on (their evidence quotes label the candidates).")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the weights (default: assistant/answer/weights.json).")  # fmt: skip
@click.option("--cv", "cv_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also cross-validate (leave one document out); write cv.json, cv.md and a plot here.")  # fmt: skip
@click.option("--index-dir", type=click.Path(path_type=Path, file_okay=False))
@_fail_nicely
def train_cmd(gold: Path, out: Path | None, cv_dir: Path | None, index_dir: Path | None) -> None:
    """Fit the answer scorer on GOLD with the built index; write the weights as JSON."""
    from assistant.answer.model import WEIGHTS_PATH
    from assistant.core import Assistant
    from assistant.evaluation.gold import load_gold
    from assistant.training import collect, cross_validate, train
    from assistant.training.report import cv_table, write_cv_report

    assistant = Assistant.load(settings=_settings(index_dir), load_weights=False)
    questions = load_gold(gold)
    with _progress_bar() as progress:
        examples = collect(assistant, questions, progress)
    model, report = train(assistant, gold, out=out or WEIGHTS_PATH, examples=examples)
    click.echo(
        f"Trained on {report.questions} questions ({report.units} candidate units, {report.positives} quoting the "
        f"evidence) in {report.seconds:.1f} s; abstention threshold {report.threshold:.3f}. Wrote {report.path}"
    )
    if cv_dir is not None:
        assistant.scorer.model = model
        with _progress_bar() as progress:
            cv = cross_validate(assistant, questions, examples=examples, progress=progress)
        click.echo(cv_table(cv))
        click.echo(f"Wrote {', '.join(str(p) for p in write_cv_report(cv, cv_dir))}")


# No Deploy button or developer menu, no "source file changed" hints or file watching, no tracebacks.
UI_FLAGS = ("--client.toolbarMode", "viewer", "--client.showErrorDetails", "none", "--server.runOnSave", "false",
            "--server.fileWatcherType", "none")  # fmt: skip


@main.command("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for everyone).")
@_fail_nicely
def ui_cmd(port: int, host: str) -> None:
    """Start the chat page in the browser (Streamlit); builds the index first if there is none."""
    from assistant.uploads import MAX_UPLOAD_BYTES

    app = PROJECT_ROOT / "ui" / "app.py"
    if not app.exists():
        raise AssistantError(f"The chat page {app} is missing; run `assistant ui` from a checkout of the project.")
    command = [
        # Streamlit's command line; the index starts loading as soon as the server listens (ui/serve.py).
        sys.executable, str(app.with_name("serve.py")), "run", str(app),
        "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.headless", "true",
        "--server.maxUploadSize", str(max(1, MAX_UPLOAD_BYTES // 1_000_000)),  # the browser refuses bigger files
        # Staff see the page, not Streamlit's developer tools (see also .streamlit/config.toml).
        *UI_FLAGS,
    ]  # fmt: skip
    click.echo(f"Chat page on http://{host}:{port} (Ctrl-C to stop)")
    sys.stdout.flush()
    os.execv(sys.executable, command)  # become the server: signals (Ctrl-C, SIGTERM) reach it directly


if __name__ == "__main__":
    main()
