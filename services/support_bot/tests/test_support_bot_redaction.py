"""Redaction of card and phone numbers written with Unicode spaces and dashes, in the stored
transcript and in the chat log line."""

from __future__ import annotations

import logging
import sys
import time
import unicodedata
from typing import Any

import pytest
from fastapi.testclient import TestClient

from verticals.support_bot.text import redact

SEPARATORS = {
    "no-break space": "\u00a0",
    "thin space": "\u2009",
    "narrow no-break space": "\u202f",
    "figure space": "\u2007",
    "ideographic space": "\u3000",
    "en dash": "\u2013",
    "em dash": "\u2014",
    "hyphen": "\u2010",
    "non-breaking hyphen": "\u2011",
    "figure dash": "\u2012",
    "minus sign": "\u2212",
    "fullwidth hyphen": "\uff0d",
    "small hyphen": "\ufe63",
    "spaced en dash": " \u2013 ",
    "zero-width space": "\u200b",
    "soft hyphen": "\u00ad",
    "dot": ".",
}
CARDS = ("4111 1111 1111 1111", "5555 5555 5555 4444", "3782 822463 10005")  # Luhn-valid


@pytest.mark.parametrize("sep", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_cards_and_phones_with_unicode_separators_are_redacted(sep: str) -> None:
    for card in CARDS:
        written = card.replace(" ", sep)
        assert redact(f"my card is {written}, thanks") == "my card is [card], thanks"
    phone = f"+49{sep}170{sep}1234567"
    assert redact(f"call {phone} today") == "call [phone] today"


def test_every_unicode_dash_is_a_separator() -> None:
    dashes = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Pd"]
    for dash in dashes:
        assert redact(f"card 4111{dash}1111{dash}1111{dash}1111") == "card [card]", hex(ord(dash))
    assert len(dashes) >= 25


def test_fullwidth_digits_and_at_sign_are_redacted() -> None:
    assert redact("card ４１１１ １１１１ １１１１ １１１１") == "card [card]"
    assert redact("mail ｊａｎｅ＠shop.example") == "mail [email]"


def test_what_is_not_a_card_stays() -> None:
    assert redact("ref 1234\u00a05678\u00a09012\u00a03456") != "ref [card]"  # fails Luhn
    assert redact("order LK123 costs 49\u00a0euros") == "order LK123 costs 49\u00a0euros"


def test_long_runs_are_redacted_in_linear_time() -> None:
    for text in ("a" * 20_000, "1" * 20_000, "1\u2013" * 10_000):
        started = time.perf_counter()
        redact(text)
        assert time.perf_counter() - started < 1.0  # the quadratic e-mail pattern took ~10 s


@pytest.mark.parametrize("sep", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_stored_transcript_and_log_line_are_redacted(
    client: TestClient, widget: str, sample: dict[str, Any], caplog: Any, sep: str
) -> None:
    card = "4111 1111 1111 1111".replace(" ", sep)
    phone = f"+49{sep}170{sep}1234567"
    session = f"pii-{ord(sep[-1]):x}-{len(sep)}"
    with caplog.at_level(logging.INFO, logger="verticals.support_bot"):
        r = client.post(
            "/v1/chat",
            json={
                "tenant": "demo",
                "session_id": session,
                "message": f"refund to card {card} please, or call {phone}",
            },
            headers={"X-API-Key": widget},
        )
    assert r.status_code == 200, r.text
    stored = [m.text for m in sample["bot"].store.recent_messages("demo", session, 5)]
    logged = [str(getattr(rec, "fields", "")) for rec in caplog.records]
    assert stored[0] == "refund to card [card] please, or call [phone]"
    assert any("[card]" in line for line in logged)
    for secret in ("4111", "1111", "1234567"):
        assert not any(secret in text for text in stored + logged), secret
