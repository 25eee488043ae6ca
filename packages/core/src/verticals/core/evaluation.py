"""Metrics: per-class P/R/F1, macro-F1, accuracy, confusion matrices (JSON and PNG);
recall@k and MRR for embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verticals.core.data import Head


def classification_report(head: Head, y_true: Sequence[Any], y_pred: Sequence[Any]) -> dict:
    """Report for one head. Multi-class: label indices; multi-label: lists of indices."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    n = len(head.labels)
    if head.multi_label:
        true = _multi_hot(y_true, n)
        pred = _multi_hot(y_pred, n)
        accuracy = float(accuracy_score(true, pred))  # exact-set match
        matrix = None
    else:
        true, pred = np.asarray(y_true), np.asarray(y_pred)
        labelled = true >= 0  # rows without a label for this head (allow_missing) are skipped
        true, pred = true[labelled], pred[labelled]
        accuracy = float(accuracy_score(true, pred))
        matrix = confusion_matrix(true, pred, labels=list(range(n))).tolist()
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=list(range(n)), zero_division=0
    )
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(head.labels)
    }
    present = [i for i in range(n) if support[i] > 0] or list(range(n))
    macro_f1 = float(f1_score(true, pred, labels=present, average="macro", zero_division=0))
    report: dict[str, Any] = {
        "macro_f1": macro_f1,
        "accuracy": accuracy,
        "per_class": per_class,
        "labels": list(head.labels),
        "n": len(true),
    }
    if matrix is not None:
        report["confusion_matrix"] = matrix
    return report


def _multi_hot(rows: Sequence[Sequence[int]], n: int) -> np.ndarray:
    out = np.zeros((len(rows), n), dtype=int)
    for i, row in enumerate(rows):
        out[i, list(row)] = 1
    return out


def summarize_heads(reports: dict[str, dict]) -> dict[str, float]:
    """Flat metrics: per-head macro-F1/accuracy and their mean (the promotion metric)."""
    flat: dict[str, float] = {}
    for name, report in reports.items():
        flat[f"{name}_macro_f1"] = report["macro_f1"]
        flat[f"{name}_accuracy"] = report["accuracy"]
    flat["macro_f1"] = float(np.mean([r["macro_f1"] for r in reports.values()]))
    flat["accuracy"] = float(np.mean([r["accuracy"] for r in reports.values()]))
    return flat


def plot_confusion_matrix(report: dict, title: str, path: Path) -> Path:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    plt = _pyplot()
    matrix = np.asarray(report["confusion_matrix"], dtype=float)
    labels = report["labels"]
    norm = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nmacro-F1 {report['macro_f1']:.3f} · accuracy {report['accuracy']:.3f}")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(int(matrix[i, j])),
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    return _save(fig, path)


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def retrieval_metrics(
    query_vectors: np.ndarray, doc_vectors: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Query i's relevant document is document i. Returns recall@k and MRR over all documents."""
    scores = query_vectors @ doc_vectors.T
    correct = scores[np.arange(len(scores)), np.arange(len(scores))]
    ranks = (scores > correct[:, None]).sum(axis=1) + 1  # 1 = best
    metrics = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / ranks))
    metrics["n"] = float(len(ranks))
    return metrics


def plot_training_curve(history: list[dict], title: str, path: Path) -> Path:
    """Training loss and validation score against optimiser steps."""
    plt = _pyplot()
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [h["train_loss"] for h in history], "o-", color="tab:red", label="train loss")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("train loss", color="tab:red")
    other = ax.twinx()
    other.plot(
        steps, [h["validation"] for h in history], "s-", color="tab:blue", label="validation"
    )
    other.set_ylabel("validation score", color="tab:blue")
    ax.set_title(title)
    return _save(fig, path)


def evaluate_directory(
    directory: str | Path,
    data_path: str | Path,
    text_column: str = "text",
    columns: dict[str, str] | None = None,
    form: str = "torch",
    encoding: str = "utf-8",
) -> dict[str, Any]:
    """Score a saved model on a labelled file. Columns default to the head names (classification)
    or ``query``/``positive`` (embedding). Returns ``{"metrics": flat, "reports": per head}``."""
    import json

    from verticals.core.config import HeadConfig
    from verticals.core.data import load_labelled, load_pairs
    from verticals.core.inference import Encoder, Predictor

    directory = Path(directory)
    card = json.loads((directory / "card.json").read_text())
    columns = columns or {}
    if card["kind"] == "embedding":
        pairs = load_pairs(
            data_path, columns.get("query", "query"), columns.get("positive", "positive"), encoding
        )
        encoder = Encoder.from_directory(directory, form)  # type: ignore[arg-type]
        metrics = retrieval_metrics(encoder.encode(pairs.queries), encoder.encode(pairs.positives))
        return {"metrics": metrics, "reports": {"retrieval": metrics}}
    heads = [Head.from_dict(h) for h in card["heads"]]
    specs = {
        h.name: HeadConfig(
            column=columns.get(h.name, h.name), multi_label=h.multi_label, allow_missing=True
        )
        for h in heads
    }
    data = load_labelled(data_path, text_column, specs, encoding, fixed_heads=heads)
    predictor = Predictor.from_directory(directory, form)  # type: ignore[arg-type]
    predicted = predictor.predict_indices(data.texts)
    reports = {
        h.name: classification_report(h, data.targets[h.name], predicted[h.name]) for h in heads
    }
    return {"metrics": summarize_heads(reports), "reports": reports}
