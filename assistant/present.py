"""Showing answers to people: quote highlighting, safe Markdown/HTML, and the conversation as Markdown.

Pure functions (no Streamlit), so the chat page stays thin and these are tested directly.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from assistant.types import Answer, Citation

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|$~:])")


def md_escape(text: str) -> str:
    """Text that Streamlit's Markdown shows literally (no emphasis, links, LaTeX `$`, `:emoji:` or headings)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def quote_spans(passage: str, quote: str) -> list[tuple[int, int]]:
    """Where the quoted words sit in the passage, whitespace-insensitive; a quote trimmed with … may match in
    several pieces. Pieces too short to be telling (< 3 words) or not found are skipped."""
    spans: list[tuple[int, int]] = []
    for piece in quote.split("…"):
        words = piece.split()
        if len(words) < 3 and len(piece.strip()) < 12:
            continue
        match = re.search(r"\s+".join(re.escape(w) for w in words), passage)
        if match:
            spans.append(match.span())
    return sorted(spans)


def passage_html(passage: str, *quotes: str) -> str:
    """The passage as escaped HTML with each quote's words in <mark>; line breaks kept."""
    out, pos = [], 0
    for start, end in sorted(span for quote in quotes for span in quote_spans(passage, quote)):
        if start < pos:
            continue
        out.append(_escape(passage[pos:start]))
        out.append(f"<mark>{_escape(passage[start:end])}</mark>")
        pos = end
    out.append(_escape(passage[pos:]))
    return '<div class="passage">' + "".join(out) + "</div>"


def _escape(text: str) -> str:
    # Entities for $ keep Streamlit's Markdown from reading LaTeX; <br> keeps the passage's lines.
    return html.escape(text).replace("$", "&#36;").replace("\n", "<br>")


def by_passage(citations: Sequence[Citation]) -> list[list[Citation]]:
    """Citations grouped by the passage they point to, in order of first mention: an answer that quotes two
    sentences of one passage shows that passage once, under both markers."""
    groups: dict[str, list[Citation]] = {}
    for c in citations:
        groups.setdefault(c.chunk_id, []).append(c)
    return list(groups.values())


def confidence_label(confidence: float) -> tuple[str, str]:
    """A badge for Answer.confidence (the learned probability that the documents answer): label and colour."""
    if confidence >= 0.8:
        return "High", "green"
    if confidence >= 0.5:
        return "Medium", "orange"
    return "Low", "red"


def where(citation: Citation) -> str:
    """Title, date, section and page of a citation, for a source line."""
    parts = [citation.title or citation.doc]
    if citation.date:
        parts.append(citation.date)
    if citation.section:
        parts.append(citation.section)
    if citation.page:
        parts.append(f"p. {citation.page}")
    return " · ".join(parts)


def answer_markdown(answer: Answer) -> str:
    """The answer for st.markdown: each sentence with its [n] markers; unsupported sentences visibly marked."""
    if answer.abstained or not answer.sentences:
        return md_escape(answer.text)
    pieces = []
    for sentence in answer.sentences:
        markers = "".join(f"\\[{n}\\]" for n in sentence.markers)
        text = md_escape(sentence.text)
        if sentence.supported:
            pieces.append(f"{text} {markers}".strip())
        else:
            why = md_escape(sentence.reason or "not supported by its sources")
            pieces.append(f":orange-background[{text}] {markers} :orange[({why})]".strip())
    return " ".join(pieces)


def conversation_markdown(turns: Sequence[Answer], *, title: str = "Conversation") -> str:
    """The conversation as a Markdown document with each answer's sources and quotes."""
    lines = [f"# {title}", ""]
    for i, answer in enumerate(turns, start=1):
        lines += [f"## {i}. {answer.question}", ""]
        if answer.abstained:
            lines += [f"> {answer.text}", "", "Closest passages (see also):" if answer.citations else "", ""]
        else:
            for sentence in answer.sentences or ():
                markers = "".join(f"[{n}]" for n in sentence.markers)
                flag = f" *({sentence.reason or 'not supported by its sources'})*" if not sentence.supported else ""
                lines.append(f"{sentence.text} {markers}{flag}".strip())
            if not answer.sentences:
                lines.append(answer.text)
            lines += ["", "Sources:", ""]
        for c in answer.citations:
            lines.append(f"- [{c.marker}] {where(c)} — {c.doc}")
            lines.append(f'  > "{c.quote}"')
        if answer.notice:
            lines += ["", f"*Note: {answer.notice}*"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
