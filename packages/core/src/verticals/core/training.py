"""``verticals train CONFIG``: load and split data, fine-tune, evaluate on the held-out test
split, and file the model with its card, test split and reports in the registry.

Under torchrun every process loads the same split and trains its shard of it; rank 0 alone
evaluates, saves and registers, and every process returns rank 0's outcome.

The training layer also owns the gates: ``promote`` re-scores the current model on a
candidate's held-out data (the registry below only compares numbers), and ``train_and_gate``
is every fine-tuning command's "train a candidate, score both on the same held-out data,
promote if better"."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verticals.core.config import TrainConfig
from verticals.core.data import (
    LabelledTexts,
    Records,
    TextPairs,
    load_labelled,
    load_pairs,
    split_indices,
    stratified_subset,
)
from verticals.core.registry import ModelRegistry, Promotion, TrainOutcome

if TYPE_CHECKING:
    from verticals.core.distributed import Distributed
    from verticals.core.sequence import Sequences

__all__ = ["Gated", "TrainOutcome", "load_dataset", "promote", "rescore", "run_training"]


def load_dataset(config: TrainConfig, records: Records | None = None) -> LabelledTexts | TextPairs:
    """The config's data: its file, or ``records`` (the same columns) when given."""
    d = config.data
    source = d.source(records)
    if config.kind == "classification":
        data: LabelledTexts | TextPairs = load_labelled(
            source, d.text_column, config.heads, d.encoding
        )
    else:
        data = load_pairs(source, d.query_column, d.positive_column, d.encoding)
    if d.max_rows:
        data = data.subset(stratified_subset(len(data), d.max_rows, d.split_seed, _strata(data)))
    return data


def _strata(data: LabelledTexts | TextPairs) -> list[object] | None:
    if isinstance(data, LabelledTexts) and data.heads and not data.heads[0].multi_label:
        return data.targets[data.heads[0].name]
    return None


def run_training(
    config: TrainConfig,
    registry: ModelRegistry | None = None,
    show_progress: bool = True,
    first_becomes_current: bool = True,
    records: Records | Sequences | None = None,
) -> TrainOutcome:
    """Train ``config`` on its data file (folder), or on ``records`` held in memory: rows of
    the file's columns, or a sequence model's ``Sequences``."""
    from verticals.core import distributed
    from verticals.core.sequence import Sequences

    if config.kind == "sequence":
        from verticals.core.sequence import train_sequence

        data = records if isinstance(records, Sequences) else None
        return train_sequence(config, registry, show_progress, first_becomes_current, data)
    if isinstance(records, Sequences):
        raise TypeError(f"sequences given for a {config.kind} model")
    if config.kind == "reranking":
        from verticals.core.reranking import train_reranker

        return train_reranker(config, registry, show_progress, first_becomes_current)
    if config.kind == "distillation":
        from verticals.core.distillation import train_distillation

        return train_distillation(config, registry, show_progress, first_becomes_current)
    with distributed.launch(config.training.device) as parallel:
        outcome = parallel.from_main(
            _train(config, registry, show_progress, first_becomes_current, parallel, records)
        )
    assert outcome is not None
    return outcome


def _train(
    config: TrainConfig,
    registry: ModelRegistry | None,
    show_progress: bool,
    first_becomes_current: bool,
    parallel: Distributed,
    records: Records | None = None,
) -> TrainOutcome | None:
    """Train (every rank); evaluate and register (rank 0 only, which returns the outcome)."""

    from verticals.core import modeling, trainer

    registry = registry or ModelRegistry.default()
    data = load_dataset(config, records)
    split = split_indices(
        len(data),
        config.data.validation_fraction,
        config.data.test_fraction,
        config.data.split_seed,
        _strata(data),
    )
    train, validation, test = (data.subset(s) for s in (split.train, split.validation, split.test))
    if len(train) < 2:
        raise ValueError(f"{config.data.name}: too few rows to train ({len(data)})")
    validation = validation if len(validation) else train  # tiny data: validate on train
    test = test if len(test) else validation

    trainer.seed_everything(config.training.seed)
    encoder = modeling.load_encoder(config.model.base)
    if config.method == "lora":
        encoder = modeling.add_lora(encoder, config.lora)
    setup = _Setup(
        config,
        parallel.device,
        modeling.load_tokenizer(modeling.resolve_base_model(config.model.base)),
        show_progress,
        parallel,
    )
    if isinstance(train, LabelledTexts):
        fitted = _fit_classifier(setup, encoder, train, validation, test)  # type: ignore[arg-type]
    else:
        fitted = _fit_embedder(setup, encoder, train, validation, test)  # type: ignore[arg-type]
    if not parallel.is_main:
        return None
    model, result, metrics, test_set = fitted.model, fitted.result, fitted.metrics, test
    max_len = config.model.max_length

    staged = registry.staging_dir()
    model = model.cpu()
    modeling.save_trained(model, staged, config.method, config.model.base)
    (staged / "test.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in test_set.to_records())
    )
    write_reports(staged / "reports", fitted.reports, result.history, config.task)
    card: dict[str, Any] = {
        "kind": config.kind,
        "method": config.method,
        "base_model": config.model.base,
        "max_length": max_len,
        "heads": [h.to_dict() for h in data.heads] if isinstance(data, LabelledTexts) else [],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "primary_metric": fitted.primary,
        "metrics": metrics,
        "data": {
            "path": config.data.name,
            "fingerprint": data.fingerprint(),
            "test_fingerprint": test_set.fingerprint(),
            "rows": len(data),
            "train": len(train),
            "validation": len(validation),
            "test": len(test_set),
        },
        "training": result.summary(
            setup.device,
            world_size=parallel.world_size,
            backend=parallel.backend,
            examples_per_rank=result.examples_per_rank,
        ),
        "config": json.loads(config.model_dump_json()),
    }
    return registry.register_trained(
        config.task, staged, card, result.seconds, first_becomes_current
    )


def rescore(model_dir: Path, candidate_dir: Path) -> dict[str, float]:
    """The registry's ``Scorer``: the model in ``model_dir`` scored on the held-out data stored
    with the candidate (its ``test.jsonl``, or a sequence model's ``data/`` folder)."""
    card = json.loads((candidate_dir / "card.json").read_text())
    if card["kind"] == "sequence":
        from verticals.core.sequence import score_directory

        return score_directory(model_dir, candidate_dir / "data")["metrics"]
    from verticals.core.evaluation import evaluate_directory

    return evaluate_directory(model_dir, candidate_dir / "test.jsonl")["metrics"]


def promote(registry: ModelRegistry, task: str, version: int, force: bool = False) -> Promotion:
    """``registry.promote`` with the current model re-scored on the candidate's test set
    (loads models: callers that serve requests run it off their event loop)."""
    return registry.promote(task, version, force=force, scorer=rescore)


Scores = dict[str, Any]


@dataclass(frozen=True)
class Gated:
    """A candidate trained and judged against the current model on the same held-out data."""

    outcome: TrainOutcome
    current: Scores
    candidate: Scores
    promoted: bool


def train_and_gate(
    config: TrainConfig,
    score_current: Callable[[TrainOutcome], Scores],
    score_candidate: Callable[[TrainOutcome], Scores],
    better: Callable[[Scores, Scores], bool],
    registry: ModelRegistry | None = None,
    records: Records | Sequences | None = None,
    promote: bool = True,
    show_progress: bool = False,
) -> Gated:
    """Train a candidate (never current on its own), score the current model (or what is served
    without one) and the candidate on the same held-out data, record both on the candidate's
    card as ``gate`` and make it current when ``better(current, candidate)`` (and ``promote``).
    Both scorers get the candidate's outcome (its folder holds its held-out split)."""
    registry = registry or ModelRegistry.default()
    outcome = run_training(
        config, registry, show_progress, first_becomes_current=False, records=records
    )
    current = score_current(outcome)
    candidate = score_candidate(outcome)
    promoted = promote and better(current, candidate)
    registry.update_card(
        config.task,
        outcome.version,
        gate={"current": current, "candidate": candidate, "promoted": promoted},
    )
    if promoted:
        registry.promote(config.task, outcome.version, force=True)
    return Gated(outcome, current, candidate, promoted)


@dataclass(frozen=True)
class _Setup:
    config: TrainConfig
    device: Any
    tokenizer: Any
    show_progress: bool
    parallel: Distributed


@dataclass
class _Fitted:
    model: Any
    result: Any
    metrics: dict[str, float]
    reports: dict[str, dict]
    primary: str


def _fit_classifier(
    setup: _Setup,
    encoder: Any,
    train: LabelledTexts,
    validation: LabelledTexts,
    test: LabelledTexts,
) -> _Fitted:
    from verticals.core import evaluation, modeling, trainer
    from verticals.core.inference import Predictor, TorchBackend

    config, t, max_len = setup.config, setup.config.training, setup.config.model.max_length
    heads = train.heads
    model: Any = modeling.build_classifier(encoder, heads, config.model.dropout).to(setup.device)

    def score(data: LabelledTexts) -> dict[str, dict]:
        predictor = Predictor(TorchBackend(model, setup.device), setup.tokenizer, heads, max_len)
        predicted = predictor.predict_indices(data.texts)
        return {
            h.name: evaluation.classification_report(h, data.targets[h.name], predicted[h.name])
            for h in heads
        }

    result = trainer.fit(
        model,
        trainer.classification_loss(heads),
        lambda order: trainer.classification_batches(
            train, setup.tokenizer, t.batch_size, max_len, setup.device, order
        ),
        len(train),
        lambda: evaluation.summarize_heads(score(validation))["macro_f1"],
        t,
        list(model.heads.parameters()),
        setup.show_progress,
        setup.parallel,
        varying_graph=any(h.allow_missing for h in config.heads.values()),
    )
    if not setup.parallel.is_main:
        return _Fitted(model, result, {}, {}, "macro_f1")
    reports = score(test)
    return _Fitted(model, result, evaluation.summarize_heads(reports), reports, "macro_f1")


def _fit_embedder(
    setup: _Setup, encoder: Any, train: TextPairs, validation: TextPairs, test: TextPairs
) -> _Fitted:
    from verticals.core import evaluation, modeling, trainer
    from verticals.core.inference import Encoder, TorchBackend

    t, max_len = setup.config.training, setup.config.model.max_length
    model: Any = modeling.build_text_encoder(encoder, normalize=True).to(setup.device)

    def score(data: TextPairs) -> dict[str, float]:
        enc = Encoder(TorchBackend(model, setup.device), setup.tokenizer, max_len)
        return evaluation.retrieval_metrics(enc.encode(data.queries), enc.encode(data.positives))

    result = trainer.fit(
        model,
        trainer.contrastive_loss(t.temperature),
        lambda order: trainer.pair_batches(
            train, setup.tokenizer, t.batch_size, max_len, setup.device, order
        ),
        len(train),
        lambda: score(validation)["mrr"],
        t,
        (),
        setup.show_progress,
        setup.parallel,
    )
    if not setup.parallel.is_main:
        return _Fitted(model, result, {}, {}, "mrr")
    metrics = score(test)
    return _Fitted(model, result, metrics, {"retrieval": metrics}, "mrr")


def write_reports(folder: Path, reports: dict[str, dict], history: list[dict], title: str) -> None:
    """``metrics.json`` with every report, a confusion-matrix PNG per head, a training curve."""
    from verticals.core.evaluation import plot_confusion_matrix, plot_training_curve

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(reports, indent=2))
    for name, report in reports.items():
        if "confusion_matrix" in report:
            plot_confusion_matrix(report, f"{title} · {name}", folder / f"confusion_{name}.png")
    if history:
        plot_training_curve(history, title, folder / "training_curve.png")
