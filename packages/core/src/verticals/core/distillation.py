"""The ``distillation`` kind: a small student sentence encoder that reproduces a larger teacher's
vectors (Reimers & Gurevych 2020, "Making monolingual sentence embeddings multilingual using
knowledge distillation"). The student is the base encoder (all-MiniLM-L6-v2 by default) plus one
linear projection to the teacher's dimension, trained by mean squared error between its vector
of a sentence and the teacher's vector of the same sentence. Vectors the teacher computed once
(a knowledge base's entries) can then be compared with the student's vectors of new texts
(questions) at the student's cost per text.

Data: a table with a ``data.text_column`` column of sentences. The teacher is
``distillation.teacher`` (a folder or model id, run as ``distillation.teacher_form``), or any
object with ``encode(texts) -> unit vectors`` passed to :func:`train_distillation` (one that
reads a cache of the teacher's vectors, say). The split is by sentence. The projection starts as
the least-squares map from the base encoder's vectors to the teacher's on the training
sentences, so the training starts from the best linear map of the frozen base encoder; the
gate: the test sentences' mean cosine to the teacher above that starting point's.

The saved model is an ``embedding`` model (``method: distillation``): ``encoder/``,
``projection.safetensors`` and its card; ``Encoder.from_directory`` / ``from_registry`` load it
in every form (torch, ONNX, int8 ONNX) like any other encoder.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from verticals.core.config import TrainConfig
from verticals.core.data import fingerprint_rows, read_table, split_indices

if TYPE_CHECKING:
    from verticals.core.registry import ModelRegistry, TrainOutcome

PROJECTION_FILE = "projection.safetensors"


def load_sentences(config: TrainConfig) -> list[str]:
    """The config's sentences, stripped, empty cells and repeats dropped, in file order."""
    d = config.data
    frame = read_table(d.file(), d.encoding)
    if d.text_column not in frame.columns:
        raise ValueError(f"{d.path}: missing column {d.text_column}")
    texts = [str(t or "").strip() for t in frame[d.text_column].tolist()]
    return list(dict.fromkeys(t for t in texts if t and t != "nan"))


def teacher_encoder(config: TrainConfig) -> Any:
    from verticals.core.inference import Encoder

    dc = config.distillation
    if not dc.teacher:
        raise ValueError("distillation.teacher is required (a folder or a model id)")
    return Encoder.from_base(dc.teacher, form=dc.teacher_form, max_length=dc.teacher_max_length)


def least_squares(source: np.ndarray, target: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Weights ``W`` (a bias row last) minimising ``|[source, 1] W - target|^2 + ridge |W|^2``."""
    x = np.hstack([source, np.ones((len(source), 1), dtype=source.dtype)]).astype(np.float64)
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ target.astype(np.float64)).astype(np.float32)


def agreement(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """Mean squared error of the raw vectors and mean cosine of the unit vectors."""
    unit = student / np.clip(np.linalg.norm(student, axis=1, keepdims=True), 1e-12, None)
    return {
        "mse": float(np.mean((student - teacher) ** 2)),
        "cosine": float(np.mean(np.sum(unit * teacher, axis=1))),
    }


def _inputs(tokenizer: Any, texts: list[str], max_length: int) -> Any:
    return tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )


def student_vectors(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """The student's raw (unnormalised) vectors, in batches, in eval mode."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = _inputs(tokenizer, texts[start : start + 64], max_length)
            out.append(model(batch["input_ids"], batch["attention_mask"]).float().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def train_distillation(
    config: TrainConfig,
    registry: ModelRegistry | None = None,
    show_progress: bool = True,
    first_becomes_current: bool = True,
    teacher: Any = None,
) -> TrainOutcome:
    """Encode the sentences with the teacher, fit the starting projection, train by MSE, compare
    with the starting point on the test sentences, register (current only past the gate)."""
    import torch
    from safetensors.torch import save_file

    from verticals.core import modeling, trainer
    from verticals.core.inference import Encoder
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    t, max_len = config.training, config.model.max_length
    sentences = load_sentences(config)
    if config.data.max_rows and len(sentences) > config.data.max_rows:
        keep = np.random.default_rng(config.data.split_seed).permutation(len(sentences))
        sentences = [sentences[int(i)] for i in sorted(keep[: config.data.max_rows])]
    if len(sentences) < 10:
        raise ValueError(f"{config.data.name}: too few sentences to train ({len(sentences)})")
    split = split_indices(
        len(sentences),
        config.data.validation_fraction,
        config.data.test_fraction,
        config.data.split_seed,
        None,
    )
    validation = split.validation or split.train
    test = split.test or validation
    teacher = teacher or teacher_encoder(config)
    targets = np.asarray(teacher.encode(sentences), dtype=np.float32)
    base = Encoder.from_base(config.model.base, max_length=max_len).encode(sentences)
    start = least_squares(base[split.train], targets[split.train])

    trainer.seed_everything(t.seed)
    device = modeling.pick_device(t.device)
    tokenizer = modeling.load_tokenizer(modeling.resolve_base_model(config.model.base))
    model: Any = modeling.build_projected_encoder(
        modeling.load_encoder(config.model.base), targets.shape[1]
    )
    with torch.no_grad():
        model.projection.weight.copy_(torch.from_numpy(start[:-1].T.copy()))
        model.projection.bias.copy_(torch.from_numpy(start[-1].copy()))
    model = model.to(device)
    mse = torch.nn.MSELoss()

    def measure(rows: list[int]) -> dict[str, float]:
        texts = [sentences[i] for i in rows]
        return agreement(student_vectors(model, tokenizer, texts, max_len), targets[rows])

    def batches(order: np.ndarray) -> Any:
        train = np.asarray(split.train)
        for first in range(0, len(order), t.batch_size):
            rows = train[order[first : first + t.batch_size]]
            inputs = _inputs(tokenizer, [sentences[int(i)] for i in rows], max_len)
            yield (
                {k: inputs[k].to(device) for k in ("input_ids", "attention_mask")},
                {"target": torch.from_numpy(targets[rows]).to(device)},
            )

    def loss(net: Any, inputs: dict, wanted: dict) -> torch.Tensor:
        return mse(net(inputs["input_ids"], inputs["attention_mask"]), wanted["target"])

    before = measure(test)
    model.train()
    result = trainer.fit(
        model,
        loss,
        batches,
        len(split.train),
        lambda: measure(validation)["cosine"],
        t,
        list(model.projection.parameters()),
        show_progress,
    )
    model = model.cpu()
    after = measure(test)
    metrics = {
        "cosine": after["cosine"],
        "mse": after["mse"],
        "cosine_start": before["cosine"],
        "mse_start": before["mse"],
        "sentences": float(len(test)),
    }
    gate = metrics["cosine"] > metrics["cosine_start"]

    staged = registry.staging_dir()
    model.body.encoder.save_pretrained(staged / "encoder", safe_serialization=True)
    tokenizer.save_pretrained(staged / "encoder")
    state = model.projection.state_dict()
    projection = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(projection, str(staged / PROJECTION_FILE))
    card: dict[str, Any] = {
        "kind": "embedding",
        "method": "distillation",
        "base_model": config.model.base,
        "teacher": config.distillation.teacher or getattr(teacher, "version", "given"),
        "dimension": int(targets.shape[1]),
        "max_length": max_len,
        "heads": [],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "primary_metric": "cosine",
        "metrics": metrics,
        "gate": {
            "rule": "test mean cosine to the teacher above the starting point's (the base "
            "encoder and the least-squares projection fitted on the training sentences)",
            "passed": gate,
        },
        "data": {
            "path": config.data.name,
            "fingerprint": fingerprint_rows(sentences),
            "test_fingerprint": fingerprint_rows([sentences[i] for i in test]),
            "rows": len(sentences),
            "train": len(split.train),
            "validation": len(validation),
            "test": len(test),
        },
        "training": result.summary(device),
        "config": json.loads(config.model_dump_json()),
    }
    return registry.register_trained(
        config.task, staged, card, result.seconds, first_becomes_current and gate
    )
