"""The chat page: ask, read the answer with its verified sources, follow up, filter, give feedback.

    streamlit run ui/app.py      (or: assistant ui, make run)

Configuration comes from the same ASSISTANT_* environment variables as the CLI. Everything that is not about
Streamlit (highlighting, Markdown export, feedback storage, upload checks) lives in the `assistant` package.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import streamlit as st

from assistant import warm
from assistant.catalog import DocumentInfo, list_documents
from assistant.config import Settings
from assistant.core import Assistant
from assistant.errors import AssistantError
from assistant.feedback import FEEDBACK_FILE, FeedbackLog
from assistant.index.store import index_exists
from assistant.present import (
    answer_markdown,
    by_passage,
    confidence_label,
    conversation_markdown,
    md_escape,
    passage_html,
    where,
)
from assistant.retrieve import Filters
from assistant.types import Answer
from assistant.uploads import MAX_UPLOAD_BYTES, add_uploads

log = logging.getLogger("assistant.ui")
EXAMPLES_FILE = Path(__file__).with_name("examples.json")
STAGES = {"files": "Reading and chunking files", "embed": "Embedding passages", "sentences": "Embedding sentences"}
CSS = """
<style>
.passage { white-space: normal; font-size: 0.92rem; line-height: 1.45; }
.passage mark { background: #ffe08a; padding: 0 2px; border-radius: 2px; }
</style>
"""


# --- loading ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=2)
def load_assistant(index_dir: str, build: str) -> Assistant:
    """One Assistant per published build: a rebuild (an upload here, or `assistant index`) loads the new one.

    `assistant ui` has started loading it when the server started (assistant.warm); otherwise it loads now.
    """
    return warm.take(Path(index_dir), build) or warm.load_for_server(Path(index_dir))


def build_index(settings: Settings, label: str) -> Any:
    """Build or update the index with a progress bar per stage; returns the BuildReport."""
    with st.status(label, expanded=True) as status:
        bars: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = st.progress(0.0, text=STAGES.get(stage, stage))
            bars[stage].progress(done / total if total else 1.0, text=f"{STAGES.get(stage, stage)}: {done}/{total}")

        report = Assistant.build(settings, progress=progress)
        status.update(label=f"Index ready: {report.documents} documents, {report.chunks} passages.", state="complete")
    return report


def get_assistant(settings: Settings) -> Assistant | None:
    try:
        if not index_exists(settings.index_dir):
            build_index(settings, "No index yet: building it from the corpus (a minute or so)…")
        with st.spinner("Loading the index and the language model…"):
            return load_assistant(str(settings.index_dir), warm.current_build(settings.index_dir))
    except AssistantError as exc:
        st.error(str(exc))
    except Exception as exc:  # never a traceback on the page; the log has it
        log.exception("loading the assistant failed")
        st.error(f"The assistant could not start ({exc.__class__.__name__}: {exc}). Check the server log.")
    return None


def examples() -> dict[str, Any]:
    try:
        data = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# --- state -----------------------------------------------------------------------------------------------


def init_state() -> None:
    st.session_state.setdefault("turns", [])  # [{"id", "answer": Answer, "sent": bool}]
    st.session_state.setdefault("session_id", uuid.uuid4().hex[:12])
    st.session_state.setdefault("generation", 0)


def new_conversation() -> None:
    st.session_state.turns = []


# --- sidebar ---------------------------------------------------------------------------------------------


_DOCUMENT_LISTS: weakref.WeakKeyDictionary[Assistant, list[DocumentInfo]] = weakref.WeakKeyDictionary()
LISTED_DOCUMENTS = 200  # the sidebar's list of documents stops here ("... and N more")


def document_list(assistant: Assistant) -> list[DocumentInfo]:
    """The indexed documents' titles and dates, read once per loaded build, without their texts."""
    if assistant not in _DOCUMENT_LISTS:
        _DOCUMENT_LISTS[assistant] = list_documents(assistant.data.documents)
    return _DOCUMENT_LISTS[assistant]


def sidebar(assistant: Assistant, settings: Settings) -> tuple[dict[str, Any], Any]:
    data = assistant.data
    docs = document_list(assistant)
    by_id = {d.doc_id: d for d in docs}
    with st.sidebar:
        st.button("New conversation", on_click=new_conversation, use_container_width=True, type="primary")
        if settings.llm_configured:
            mode = st.radio(
                "Answer mode",
                ["extractive", "llm"],
                index=["extractive", "llm"].index(settings.mode),
                format_func=lambda m: (
                    "Quotes only (extractive)" if m == "extractive" else f"LLM ({settings.llm_model})"
                ),
                help="Extractive answers quote the documents; LLM answers are written by the model, then verified.",
            )
        else:
            mode = "extractive"
            st.caption("Answer mode: quotes from the documents (no LLM configured).")
        chosen = st.multiselect(
            "Documents",
            [d.doc_id for d in docs],
            format_func=lambda doc_id: f"{by_id[doc_id].title} ({by_id[doc_id].date or 'undated'})",
            placeholder="All documents",
        )
        dates = sorted(day for d in docs for end in (False, True) if (day := _as_date(d.date, end)))
        period: Any = ()
        if dates:
            slack = dt.timedelta(days=366)
            period = st.date_input(
                "Dated between",
                value=(dates[0], dates[-1]),
                min_value=dates[0] - slack,
                max_value=dates[-1] + slack,
                format="YYYY-MM-DD",
            )
        top_k = st.slider("Passages to read", 1, 15, settings.top_k, help="How many passages each answer draws on.")
        st.divider()
        built = data.manifest.created_at.replace("T", " ")[:16]
        st.markdown(f"**Corpus:** {len(data.documents)} documents, {len(data.chunks)} passages; index built {built}.")
        with st.expander("Documents in the index"):
            for d in docs[:LISTED_DOCUMENTS]:
                reference = f" — {md_escape(d.reference)}" if d.reference else ""
                st.markdown(f"- {md_escape(d.title)} ({d.date or 'undated'}){reference}")
            if len(docs) > LISTED_DOCUMENTS:
                st.caption(f"… and {len(docs) - LISTED_DOCUMENTS} more (choose them by name under Documents).")
        upload_box(settings)
        download = st.empty()  # filled at the end of the run, when this run's answer is in the conversation
    filters = Filters(docs=tuple(chosen))
    if isinstance(period, tuple) and len(period) == 2 and dates and (period[0] > dates[0] or period[1] < dates[-1]):
        filters = Filters(docs=tuple(chosen), date_from=period[0].isoformat(), date_to=period[1].isoformat())
    return {"mode": mode, "filters": None if filters.empty else filters, "top_k": top_k}, download


def download_button(slot: Any) -> None:
    turns = [t["answer"] for t in st.session_state.turns]
    slot.download_button(
        "Download conversation (.md)",
        conversation_markdown(turns, title="EU migration-policy assistant: conversation"),
        file_name="conversation.md",
        mime="text/markdown",
        disabled=not turns,
        use_container_width=True,
    )


def _as_date(value: str, end: bool = False) -> dt.date | None:
    """An ISO date, possibly partial ("2024-12"): its first day, or with `end` its last; None if not a date."""
    try:
        parts = [int(p) for p in value.split("-")]
        if len(parts) == 3:
            return dt.date(*parts)
        if len(parts) == 1:
            return dt.date(parts[0], 12, 31) if end else dt.date(parts[0], 1, 1)
        first = dt.date(parts[0], parts[1], 1)
    except (ValueError, TypeError):
        return None
    return (first + dt.timedelta(days=31)).replace(day=1) - dt.timedelta(days=1) if end else first


def upload_box(settings: Settings) -> None:
    with st.expander("Add documents"):
        limit = MAX_UPLOAD_BYTES // 1_000_000
        files = st.file_uploader(
            f"Text, Markdown, HTML or PDF, up to {limit} MB each",
            type=["txt", "md", "html", "htm", "pdf"],
            accept_multiple_files=True,
            key=f"uploader-{st.session_state.generation}",
        )
        if files and st.button("Add to the corpus and index", use_container_width=True):
            add_documents(settings, files)


def add_documents(settings: Settings, files: list[Any]) -> None:
    names = ", ".join(f.name for f in files)
    try:
        result = add_uploads(
            [(f.name, f.getvalue()) for f in files],
            settings.corpus_dir,
            lambda: build_index(settings, f"Indexing {names}…"),
        )
    except AssistantError as exc:  # the build failed: add_uploads has already taken every upload back out
        st.error(f"{exc} The upload was not added.")
        return
    for reason in result.refused.values():
        st.error(f"{reason} It was not added.")
    if result.added and result.report is not None:
        st.session_state.generation += 1
        st.success(f"Added {', '.join(result.added)}. The index now has {result.report.chunks} passages.")


# --- answers ---------------------------------------------------------------------------------------------


def show_answer(turn: dict[str, Any], assistant: Assistant, log_path: Path) -> None:
    answer: Answer = turn["answer"]
    if answer.notice:
        st.info(answer.notice, icon="ℹ️")
    if answer.abstained:
        st.warning(f"The documents don't answer this. {answer.reason or ''}".strip(), icon="🔍")
        if answer.citations:
            st.caption("See also — the closest passages, which do not answer it:")
    else:
        st.markdown(answer_markdown(answer))
        if answer.confidence is not None:
            label, colour = confidence_label(answer.confidence)
            st.markdown(
                f":{colour}-badge[{label} confidence]",
                help=f"Probability that the documents answer this question: {answer.confidence:.2f}",
            )
        if answer.standalone_question and answer.standalone_question != answer.question:
            st.caption(f"Searched for: {answer.standalone_question}")
        if not answer.supported:
            st.caption(":orange[Sentences marked in orange are not supported by their sources.]")
    for group in by_passage(answer.citations):
        first = group[0]
        label = " ".join(f"[{c.marker}]" for c in group) + f" {where(first)}"
        failed = [f"[{c.marker}]" for c in group if not c.supported]
        if failed and not answer.abstained:
            label += f" — {' '.join(failed)} does not support its sentence"
            reasons = sorted({c.reason for c in group if not c.supported and c.reason})
            if reasons:
                label += f" ({'; '.join(reasons)})"
        with st.expander(label):
            quotes = [q for c in group for q in (c.quotes or (c.quote,))]
            passage = _passage_text(assistant, first.chunk_id) or " … ".join(quotes)
            st.markdown(passage_html(passage, *quotes), unsafe_allow_html=True)
            st.caption(f"{first.doc}" + (f" · page {first.page}" if first.page else ""))
    st.caption(
        f"{answer.mode.capitalize()} answer from {len(answer.hits)} passages in {answer.timings_ms['total']:.0f} ms."
    )
    feedback(turn, log_path)


def _passage_text(assistant: Assistant, chunk_id: str) -> str:
    index = assistant.scorer.position.get(chunk_id)  # chunk_id -> position, kept by the answerer already
    return assistant.data.chunks[index].text if index is not None else ""


def feedback(turn: dict[str, Any], log_path: Path) -> None:
    if turn.get("sent"):
        st.caption("Thanks, your feedback was saved.")
        return
    rating = st.feedback("thumbs", key=f"rating-{turn['id']}")
    if rating is None:
        return
    with st.form(key=f"feedback-{turn['id']}", border=False):
        hint = "What was wrong or missing?" if rating == 0 else "Anything to add?"
        comment = st.text_input("Comment (optional)", key=f"comment-{turn['id']}", placeholder=hint)
        if st.form_submit_button("Send feedback"):
            answer: Answer = turn["answer"]
            try:
                FeedbackLog(log_path).record(
                    session=st.session_state.session_id,
                    question=answer.question,
                    answer=answer.text,
                    citations=[c.to_dict() for c in answer.citations],
                    rating=int(rating),
                    comment=comment,
                    mode=answer.mode,
                    abstained=answer.abstained,
                )
                turn["sent"] = True
                st.rerun()
            except AssistantError as exc:
                st.error(str(exc))


def ask(assistant: Assistant, question: str, options: dict[str, Any]) -> Answer | None:
    """Answer with the conversation so far as history; stream LLM text as it comes."""
    history = [t["answer"] for t in st.session_state.turns]
    final: list[Answer] = []

    def pieces() -> Iterator[str]:
        for item in assistant.stream_answer(question, history=history, **options):
            if isinstance(item, Answer):
                final.append(item)
            else:
                yield item

    try:
        if options["mode"] == "llm":
            placeholder = st.empty()
            with placeholder.container():
                st.write_stream(pieces())
            placeholder.empty()  # the verified version replaces what was streamed
        else:
            with st.spinner("Searching the documents…"):
                for _ in pieces():
                    pass
    except AssistantError as exc:
        st.error(str(exc))
        return None
    except Exception as exc:
        log.exception("answering failed")
        st.error(f"Something went wrong while answering ({exc.__class__.__name__}). Please try again.")
        return None
    return final[-1] if final else None


# --- page ------------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="EU migration-policy assistant", page_icon="📑", layout="wide")
    st.markdown(CSS, unsafe_allow_html=True)
    init_state()
    try:
        settings = Settings.from_env()
    except AssistantError as exc:
        st.error(f"Configuration problem: {exc}")
        return
    st.title("EU migration-policy assistant")
    info = examples()
    st.caption(
        (info.get("about") or "Questions about the documents in the corpus.")
        + " Every sentence of an answer cites the passage it comes from; when the documents are silent, it says so."
    )
    assistant = get_assistant(settings)
    if assistant is None:
        return
    options, download = sidebar(assistant, settings)
    log_path = settings.index_dir / FEEDBACK_FILE

    # The chat box is pinned to the bottom wherever it is called; read first, so that a question asked now is
    # answered in this same run, in place: no second run of the whole page to show it (Enter -> answer time).
    question = st.chat_input("Ask about the documents…")
    welcome = st.empty()  # always there, so the conversation below keeps its place on the page
    if not st.session_state.turns and not question:
        with welcome.container():
            st.markdown("**Try a question:**")
            columns = st.columns(2)
            for i, example in enumerate(info.get("examples", [])[:4]):
                if columns[i % 2].button(example, key=f"example-{i}", use_container_width=True):
                    question = example
        if question:
            welcome.empty()  # examples make way for the conversation

    for turn in st.session_state.turns:
        with st.chat_message("user"):
            st.markdown(md_escape(turn["answer"].question))
        with st.chat_message("assistant"):
            show_answer(turn, assistant, log_path)

    if question:
        with st.chat_message("user"):
            st.markdown(md_escape(question))
        with st.chat_message("assistant"):
            answer = ask(assistant, question, options)
            if answer is not None:
                turn = {"id": uuid.uuid4().hex[:10], "answer": answer, "sent": False}
                st.session_state.turns.append(turn)
                show_answer(turn, assistant, log_path)  # where the next run shows it: same place, same keys
    download_button(download)


try:
    main()
except Exception as exc:  # the last line of defence: a short message on the page, the traceback in the log
    log.exception("the chat page failed")
    st.error(f"Something went wrong on this page ({exc.__class__.__name__}). Reload it; if it persists, see the log.")
