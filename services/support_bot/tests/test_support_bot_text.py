"""Redaction, FAQ parsing and document splitting (no model)."""

from __future__ import annotations

import pytest

from verticals.support_bot.text import InputError, parse_faq, redact, split_document


def test_redaction() -> None:
    text = "mail a.b+c@shop.example or call +49 (30) 123-4567; card 4111-1111-1111-1111"
    out = redact(text)
    assert out == "mail [email] or call [phone]; card [card]"
    assert redact("order LK123 costs 49 euros") == "order LK123 costs 49 euros"
    # 16 digits failing the Luhn check are not a card (but still long digits: a phone-like run)
    assert "[card]" not in redact("ref 1234 5678 9012 3456")


def test_parse_faq_reports_every_bad_row() -> None:
    content = "id,question,answer\nok,Q?,A.\n,Q2?,A2.\nx,,\nok,dup?,dup.\n"
    with pytest.raises(InputError) as err:
        parse_faq(content, "csv", "f.csv", 1000)
    message = str(err.value)
    assert "3 invalid" in message and "row 2" in message and "row 3" in message
    assert "duplicate id 'ok'" in message
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        parse_faq('{"id":"a","question":"q","answer":"a"}\n{oops\n', "jsonl", "f.jsonl", 1000)
    rows = parse_faq('{"id":"a","question":"q","answer":"a","tags":["t"]}\n', "jsonl", "f", 1000)
    assert rows[0].tags == ["t"] and rows[0].kind == "faq"


def test_split_markdown_and_html_keep_headings() -> None:
    md = "# Guide\n\nIntro text.\n\n## Part A\nAlpha one.\nAlpha two.\n\n### Detail\nDeep.\n"
    parts = split_document("guide", md, "markdown")
    assert [(p.id, p.title, p.heading, p.body) for p in parts] == [
        ("guide#1", "Guide", "", "Intro text."),
        ("guide#2", "Guide", "Part A", "Alpha one. Alpha two."),
        ("guide#3", "Guide", "Part A > Detail", "Deep."),
    ]
    html = "<html><head><title>T</title><style>p{}</style></head><body><h1>T</h1><h2>S</h2>"
    html += "<p>One <b>bold</b> line.</p><script>x()</script></body></html>"
    parts = split_document("page", html, "html")
    assert [(p.title, p.heading, p.body) for p in parts] == [("T", "S", "One bold line.")]
    long_text = " ".join(f"w{i}" for i in range(300))
    assert len(split_document("t", long_text, "text")) == 3
    with pytest.raises(InputError, match="no text"):
        split_document("empty", "# Only a title\n", "markdown")
    with pytest.raises(InputError, match="bad document id"):
        split_document("bad#id", "text", "text")
