"""Training configuration: one frozen, validated object read from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HeadConfig(_Frozen):
    """One label head on the shared encoder."""

    column: str
    labels: list[str] | None = None
    """Allowed labels in order; inferred (sorted) from the data when omitted."""
    multi_label: bool = False
    """Several labels per text, separated by ``label_separator`` in the column."""
    label_separator: str = "|"
    allow_missing: bool = False
    """Rows without a label for this head still train the other heads (joint training on data
    sets labelled for different heads); they are left out of this head's loss and metrics."""


class DataConfig(_Frozen):
    path: Path | None = None
    """The data file (or a sequence model's folder); None when rows are passed in memory."""
    text_column: str = "text"
    """Classification: the text. Embedding: unused (see the two columns below)."""
    query_column: str = "query"
    positive_column: str = "positive"
    encoding: str = "utf-8"
    validation_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    split_seed: int = 42
    max_rows: int | None = Field(None, gt=0)
    """Take a seeded, stratified subset of this size first (for quick runs)."""

    @property
    def name(self) -> str:
        """Where the rows come from, as cards and error messages name it."""
        return str(self.path) if self.path is not None else "in-memory records"

    def file(self) -> Path:
        if self.path is None:
            raise ConfigError("data.path is required (no rows were passed in memory)")
        return self.path

    def source(self, records: Any = None) -> Any:
        """``records`` when given (rows held in memory), else the data file."""
        return records if records is not None else self.file()


class ModelConfig(_Frozen):
    base: str = DEFAULT_BASE_MODEL
    """A local path or a hub id; the packaged all-MiniLM-L6-v2 is used offline."""
    max_length: int = Field(128, gt=0, le=512)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class LoraConfig(_Frozen):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] = ["query", "key", "value", "dense"]


class TrainingConfig(_Frozen):
    epochs: int = Field(3, gt=0)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    head_learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    gradient_accumulation_steps: int = Field(1, gt=0)
    patience: int = Field(2, ge=0)
    """Stop after this many evaluations without improvement (0: never stop early)."""
    eval_every_steps: int | None = Field(None, gt=0)
    """Evaluate every N optimiser steps instead of once per epoch."""
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    temperature: float = Field(0.05, gt=0)
    """Embedding task: softmax temperature of the in-batch-negatives loss."""


class SequenceConfig(_Frozen):
    """The ``sequence`` kind: a user tower over item text vectors (``verticals.core.sequence``)."""

    dim: int = Field(64, gt=0)
    layers: int = Field(2, gt=0)
    heads: int = Field(2, gt=0)
    max_length: int = Field(50, gt=1)
    """The user's latest items the tower reads."""
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    id_embeddings: bool = True
    """Learn an id embedding per trained item on top of its text (new items use text only)."""
    id_dropout: float = Field(0.25, ge=0.0, le=1.0)
    """Share of items trained without their id part in each step (trains the text path)."""
    negatives: int = Field(0, ge=0)
    """0: full softmax over all items; N: the batch's items plus N uniformly sampled ones."""
    history_cap: int = Field(0, ge=0)
    """Train on at most each user's latest N items (0: all; caps the few very long histories)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """Label smoothing of the softmax loss."""
    schedule: Literal["constant", "cosine"] = "constant"
    """Learning rate: constant, or linear warm-up (``warmup_ratio``) then cosine decay to 0 over
    ``epochs``."""
    members: int = Field(1, ge=1, le=8)
    """Towers trained alike from seeds ``seed``, ``seed + 1``, ...; served as one whose score is
    their mean (the vectors concatenated: one inner-product search)."""


class RerankingConfig(_Frozen):
    """The ``reranking`` kind: a cross-encoder (``verticals.core.reranking``)."""

    negatives: int = Field(3, ge=0)
    """Hard negatives mined per query from each of the base encoder and TF-IDF."""
    candidates: int = Field(10, gt=0)
    """Candidates per test query in the gate (the base encoder's top ones plus positives)."""
    label_column: str = "label"
    """Optional: 1 for a relevant passage, 0 for a labelled negative (default: all relevant)."""


class DistillationConfig(_Frozen):
    """The ``distillation`` kind: a student encoder learns a teacher's vectors
    (``verticals.core.distillation``)."""

    teacher: str = ""
    """The teacher: a folder or model id (or a teacher object passed to the trainer)."""
    teacher_form: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    teacher_max_length: int = Field(128, gt=0, le=512)


class TrainConfig(_Frozen):
    """Everything ``verticals train CONFIG`` needs."""

    task: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """Registry name the trained model is filed under, e.g. ``news-sentiment-topic``."""
    kind: Literal["classification", "embedding", "sequence", "reranking", "distillation"] = (
        "classification"
    )
    method: Literal["full", "lora"] = "full"
    data: DataConfig
    heads: dict[str, HeadConfig] = {}
    model: ModelConfig = ModelConfig()
    lora: LoraConfig = LoraConfig()
    training: TrainingConfig = TrainingConfig()
    sequence: SequenceConfig = SequenceConfig()
    reranking: RerankingConfig = RerankingConfig()
    distillation: DistillationConfig = DistillationConfig()

    @model_validator(mode="after")
    def _heads_match_kind(self) -> TrainConfig:
        if self.kind == "classification" and not self.heads:
            raise ValueError("a classification task needs at least one entry under 'heads'")
        if self.kind != "classification" and self.heads:
            raise ValueError(f"an {self.kind} task takes no 'heads'")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a config; relative data paths are resolved against the config's folder."""
        path = Path(path)
        try:
            raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = raw.get("data")
        if isinstance(data, dict) and "path" in data:
            data_path = Path(data["path"])
            if not data_path.is_absolute() and not data_path.exists():
                data["path"] = str(path.parent / data_path)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"{path}: {problems}") from exc


class ConfigError(ValueError):
    """A training config is missing, malformed or invalid; the message names the field."""
