"""Evaluation, calibration, rewording and the CLI."""

from __future__ import annotations

import json
from typing import Any

import httpx
from typer.testing import CliRunner


def test_hybrid_retrieval_and_calibrated_handoff(sample: dict) -> None:
    from verticals.support_bot.pipeline import read_questions

    bot, settings = sample["bot"], sample["settings"]
    questions = read_questions(settings.sample_dir / "questions.jsonl")
    hybrid = bot.evaluate("demo", questions, "hybrid")
    dense = bot.evaluate("demo", questions, "dense")
    bm25 = bot.evaluate("demo", questions, "bm25")
    assert hybrid["in_scope"] == 103 and hybrid["out_of_scope"] == 24
    assert hybrid["mrr"] > dense["mrr"] and hybrid["mrr"] > bm25["mrr"]
    assert hybrid["hit@5"] >= 0.9 and hybrid["hit@1"] >= 0.75
    policy = bot.policy("demo")
    assert policy.calibrated and 0.0 < policy.threshold < 0.6
    assert hybrid["handoff_recall"] >= 0.6 and hybrid["handoff_precision"] >= 0.6
    stored = bot.store.tenant("demo").calibration
    assert stored["encoder"] == bot.encoder.version and stored["validation_questions"] == 64


def test_rewording_and_its_fallback(sample: dict) -> None:
    from verticals.support_bot.llm import Rewriter

    bot = sample["bot"]
    seen: list[dict[str, Any]] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": "Sure! Klarna."}}]})

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="overloaded")

    try:
        bot.rewriter = Rewriter(
            "http://llm.test/v1", "m", client=httpx.Client(transport=httpx.MockTransport(ok))
        )
        reply = bot.chat("demo", "llm-1", "can I pay later with an invoice?")
        assert reply.reworded and reply.text == "Sure! Klarna."
        assert "Klarna" in seen[0]["messages"][1]["content"]  # grounded on the extractive answer
        bot.rewriter = Rewriter(
            "http://llm.test/v1", "m", client=httpx.Client(transport=httpx.MockTransport(down))
        )
        reply = bot.chat("demo", "llm-2", "can I pay later with an invoice?")
        assert not reply.reworded and reply.text.startswith("Yes, with Klarna")
    finally:
        bot.rewriter = None


def test_cli_eval_and_errors(tmp_path: Any, monkeypatch: Any, sample: dict) -> None:
    from verticals.core.cli import _add_plugins, app

    _add_plugins()
    monkeypatch.setenv("VERTICALS_SUPPORT_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    questions = tmp_path / "q.csv"
    questions.write_text(
        "question,expected\nwhere is my package,shp-003\nhow do I wash linen,prd-004\n"
        "tell me a joke,\n"
    )
    result = runner.invoke(app, ["support", "eval", str(questions), "--mode", "bm25"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["questions"] == 3 and report["in_scope"] == 2 and report["mode"] == "bm25"
    bad = runner.invoke(app, ["support", "eval", str(tmp_path / "missing.jsonl")])
    assert bad.exit_code == 2 and "no such file" in bad.output
    bad = runner.invoke(app, ["support", "ingest", "nobody", str(questions)])
    assert bad.exit_code == 2 and "nobody" in bad.output
