from __future__ import annotations

import pytest

from assistant.ingest.markup import normalize_for_match, strip_markup
from assistant.ingest.sentences import split_sentences


def test_strip_markup_keeps_a_map_back_to_every_raw_character() -> None:
    raw = "## Title\n\n**Bold** text &amp; <b>more</b><sup>th</sup>\t<ul><li>- one</li><li>- two</li></ul>\n"
    cleaned = strip_markup(raw)
    assert "Title" in cleaned.text and "<" not in cleaned.text and "**" not in cleaned.text
    assert "&" in cleaned.text and "&amp;" not in cleaned.text
    for ch, offset in zip(cleaned.text, cleaned.offsets, strict=True):
        assert ch in (" ", "\n", "&") or raw[offset] == ch
    assert "\t" in cleaned.text  # table structure survives
    assert len([b for b in cleaned.breaks if cleaned.text[b:].lstrip().startswith(("one", "two"))]) >= 2


def test_strip_markup_records_headings_and_bold_spans() -> None:
    cleaned = strip_markup("# Top\n\n**Bold heading**\n\ntext\n")
    assert 0 in cleaned.headings and cleaned.headings[0] == 1
    (start, end), *_ = cleaned.strong
    assert cleaned.text[start:end] == "Bold heading"


def test_less_than_signs_and_links_are_text_not_tags() -> None:
    assert strip_markup("children <5 years, see <https://example.org>").text == (
        "children <5 years, see <https://example.org>"
    )


@pytest.mark.parametrize(
    ("quote", "source"),
    [
        pytest.param("First weeks : finalisation", "- ✓ First weeks : finalisation", id="bullets"),
        pytest.param("a b", "<p>a</p>\n\n<p>b</p>", id="tags-and-newlines"),
        pytest.param("flights HLRT", "flights\n\n---\n\nHLRT", id="rules"),
        pytest.param("Bold text", "**Bold** text", id="emphasis"),
    ],
)
def test_normalize_for_match_makes_quotes_comparable(quote: str, source: str) -> None:
    assert normalize_for_match(quote) in normalize_for_match(source)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("See Art. 25a of the Code. Next one.", ["See Art. 25a of the Code.", "Next one."], id="abbrev"),
        pytest.param("EUR 2.5 million (e.g. IOM). Then.", ["EUR 2.5 million (e.g. IOM).", "Then."], id="decimals"),
        pytest.param("1. Strengthen ties. 2. Fund it.", ["1. Strengthen ties.", "2. Fund it."], id="enumerators"),
        pytest.param("No end", ["No end"], id="no-terminal"),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert [text[s:e] for s, e in split_sentences(text)] == expected
