from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from verticals.core.config import TrainConfig
from verticals.core.inference import Encoder, Predictor
from verticals.core.registry import ModelRegistry
from verticals.core.training import run_training


def test_two_head_lora_training_learns(trained) -> None:
    registry, outcome = trained
    card = registry.card("mood-topic", outcome.version)
    history = card["training"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.7  # loss falls
    # chance is 1/3 (mood) and 1/4 (topic): both heads learned on held-out data
    assert outcome.metrics["mood_accuracy"] > 0.6
    assert outcome.metrics["topic_accuracy"] > 0.6
    assert card["current"] is True  # the first version of a task becomes current


def test_saved_model_holds_only_what_training_changed(trained) -> None:
    registry, _ = trained
    path = registry.path("mood-topic")
    assert (path / "adapter" / "adapter_model.safetensors").exists()
    assert (path / "heads.safetensors").exists()
    assert not (path / "encoder").exists()  # the base weights come from their package
    assert not list(path.rglob("*.bin")) and not list(path.rglob("*.pkl"))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size < 10_000_000
    card = json.loads((path / "card.json").read_text())
    for key in ("base_model", "kind", "heads", "data", "config", "metrics", "created_at"):
        assert key in card
    assert card["data"]["fingerprint"] and (path / "test.jsonl").exists()
    assert (path / "reports" / "confusion_mood.png").stat().st_size > 1000
    assert "macro_f1" in (path / "README.md").read_text()


def test_predictor_gives_every_head_in_one_pass(trained) -> None:
    registry, _ = trained
    predictor = Predictor.from_registry("mood-topic", registry=registry)
    texts = [
        "The courier lost my parcel again, I am furious",
        "Thanks, the refund was quick and easy",
        "",
        "word " * 500,  # truncated, not an error
    ]
    results = predictor.predict(texts)
    assert len(results) == 4
    assert results[0]["mood"]["label"] == "negative"
    assert results[1]["mood"]["label"] == "positive"
    assert results[0]["topic"]["label"] == "delivery"
    assert results[1]["topic"]["label"] == "billing"
    for row in results:
        assert abs(sum(row["mood"]["probabilities"].values()) - 1) < 1e-4
    # batching and order do not change the answer
    single = [predictor.predict([t])[0]["topic"]["label"] for t in texts[:2]]
    assert single == [r["topic"]["label"] for r in results[:2]]


def test_predictor_is_thread_safe(trained) -> None:
    from concurrent.futures import ThreadPoolExecutor

    registry, _ = trained
    predictor = Predictor.from_registry("mood-topic", registry=registry)
    texts = [f"Question {i} about my invoice" for i in range(40)]
    expected = predictor.predict_proba(texts)["topic"]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: predictor.predict_proba(texts)["topic"], range(8)))
    for out in outs:
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_onnx_fast_form_matches_torch(trained) -> None:
    from verticals.core.onnx import export_onnx

    registry, _ = trained
    path = registry.path("mood-topic")
    export_onnx(path)
    texts = ["short", "a rather longer message about the password reset of my account page"]
    torch_p = Predictor.from_directory(path).predict_proba(texts)
    onnx_p = Predictor.from_directory(path, form="onnx").predict_proba(texts)
    for head in ("mood", "topic"):  # the fp32 export computes the same function
        np.testing.assert_allclose(onnx_p[head], torch_p[head], atol=1e-4)
    # the int8 form is measured against fp32 on real texts in test_core_fast_forms.py


def test_full_fine_tuning_and_multi_label(tmp_path: Path) -> None:
    rows = []
    words = {"red": "crimson apple", "blue": "ocean sky", "green": "fresh grass"}
    for i in range(60):
        chosen = [c for j, c in enumerate(words) if (i >> j) & 1] or ["red"]
        text = " and ".join(words[c] for c in chosen) + f" item {i}"
        rows.append({"text": text, "colors": "|".join(chosen)})
    data = tmp_path / "colors.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig.model_validate(
        {
            "task": "colors",
            "method": "full",
            "data": {"path": str(data), "test_fraction": 0.2, "validation_fraction": 0.15},
            "heads": {"colors": {"column": "colors", "multi_label": True}},
            "training": {
                "epochs": 4,
                "batch_size": 8,
                "learning_rate": 1e-4,
                "device": "cpu",
                "head_learning_rate": 5e-3,
                "patience": 0,
            },
        }
    )
    registry = ModelRegistry(tmp_path / "reg")
    outcome = run_training(config, registry, show_progress=False)
    assert (outcome.path / "encoder" / "model.safetensors").exists()
    assert outcome.metrics["colors_macro_f1"] > 0.7
    predicted = Predictor.from_registry("colors", registry=registry).predict(
        ["ocean sky and fresh grass"]
    )
    assert set(predicted[0]["colors"]["labels"]) == {"blue", "green"}


def test_contrastive_embedding_training_improves_retrieval(tmp_path: Path) -> None:
    from verticals.core.evaluation import retrieval_metrics

    # codes that the base model cannot know: the pairs teach "ticket Kx" <-> its topic
    topics = ["refund policy", "lost parcel", "password reset", "invoice copy", "size exchange"]
    rows = [
        {"query": f"help with case {chr(75 + t)}{n}", "positive": f"{topics[t]} article {n % 3}"}
        for t in range(5)
        for n in range(24)
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig.model_validate(
        {
            "task": "encoder",
            "kind": "embedding",
            "method": "full",
            "data": {"path": str(data), "test_fraction": 0.25, "validation_fraction": 0.1},
            "training": {
                "epochs": 3,
                "batch_size": 16,
                "learning_rate": 5e-5,
                "device": "cpu",
                "patience": 0,
            },
        }
    )
    registry = ModelRegistry(tmp_path / "reg")
    outcome = run_training(config, registry, show_progress=False, first_becomes_current=False)
    assert registry.current_version("encoder") is None
    test = [json.loads(line) for line in (outcome.path / "test.jsonl").read_text().splitlines()]
    queries = [r["query"] for r in test]
    docs = [r["positive"] for r in test]
    base = Encoder.from_base()
    tuned = Encoder.from_directory(outcome.path)
    before = retrieval_metrics(base.encode(queries), base.encode(docs))
    after = retrieval_metrics(tuned.encode(queries), tuned.encode(docs))
    assert after["mrr"] > before["mrr"] + 0.05
    assert outcome.metrics["mrr"] == after["mrr"]
    assert tuned.dimension == 384
