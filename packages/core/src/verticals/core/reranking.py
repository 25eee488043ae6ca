"""The ``reranking`` kind: a cross-encoder that reads a query and a passage together and scores
their relevance, trained from the base encoder's weights (all-MiniLM-L6-v2 by default) plus one
linear head, with a binary cross-entropy loss so its sigmoid reads as a probability.

Data: rows of ``query`` and ``positive`` passage; an optional ``label`` column marks rows whose
passage is a labelled negative (0) rather than a positive (1). For every query, hard negatives
are mined from the passages of the other rows: the base encoder's nearest passages (exact cosine
search) and the lexically closest ones (TF-IDF), never one of the query's positives. The split
is by query. The gate: on each test query, its positives plus the base encoder's top
``candidates`` passages are ranked by the base encoder and by the reranker; a version becomes
current only when its MRR beats the base encoder's on the same candidates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from verticals.core.config import TrainConfig
from verticals.core.data import fingerprint_rows, read_table, split_indices

if TYPE_CHECKING:
    from verticals.core.registry import ModelRegistry, TrainOutcome


@dataclass
class Group:
    """One query with its positive passages and its negatives (indices into the pool)."""

    query: str
    positives: list[int]
    negatives: list[int] = field(default_factory=list)


@dataclass
class RerankData:
    pool: list[str]
    groups: list[Group]

    def fingerprint(self) -> str:
        return fingerprint_rows([(g.query, sorted(g.positives)) for g in self.groups])

    def subset(self, indices: list[int]) -> RerankData:
        return RerankData(self.pool, [self.groups[i] for i in indices])


def load_groups(config: TrainConfig) -> RerankData:
    """Rows grouped by query; empty cells are errors naming the row."""
    d = config.data
    frame = read_table(d.file(), d.encoding)
    missing = [c for c in (d.query_column, d.positive_column) if c not in frame.columns]
    if missing:
        raise ValueError(f"{d.path}: missing column(s) {', '.join(missing)}")
    label_column = config.reranking.label_column
    labels = (
        [int(v) for v in frame[label_column].tolist()]
        if label_column in frame.columns
        else [1] * len(frame)
    )
    pool: dict[str, int] = {}
    groups: dict[str, Group] = {}
    errors = []
    for row, (q, p, y) in enumerate(
        zip(frame[d.query_column].tolist(), frame[d.positive_column].tolist(), labels, strict=True),
        start=1,
    ):
        q, p = str(q or "").strip(), str(p or "").strip()
        if not q or not p or q == "nan" or p == "nan":
            errors.append(f"row {row}: missing query or passage")
            continue
        index = pool.setdefault(p, len(pool))
        group = groups.setdefault(q, Group(q, []))
        (group.positives if y else group.negatives).append(index)
    if errors:
        raise ValueError(f"{d.path}: " + "; ".join(errors[:5]))
    kept = [g for g in groups.values() if g.positives]
    return RerankData(list(pool), kept)


def _base_vectors(config: TrainConfig, texts: list[str]) -> np.ndarray:
    from verticals.core.inference import Encoder

    return Encoder.from_base(config.model.base, max_length=config.model.max_length).encode(texts)


def mine_negatives(config: TrainConfig, data: RerankData) -> np.ndarray:
    """Add dense and lexical hard negatives to every group; returns the query-pool cosines."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    r = config.reranking
    queries = [g.query for g in data.groups]
    cosines = _base_vectors(config, queries) @ _base_vectors(config, data.pool).T
    tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit(data.pool)
    lexical = (tfidf.transform(queries) @ tfidf.transform(data.pool).T).toarray()
    for i, group in enumerate(data.groups):
        taken = set(group.positives) | set(group.negatives)
        for scores in (cosines[i], lexical[i]):
            added = 0
            for j in np.argsort(-scores):
                if added >= r.negatives:
                    break
                if int(j) not in taken:
                    group.negatives.append(int(j))
                    taken.add(int(j))
                    added += 1
    return cosines


def build_cross_encoder(encoder: Any, dropout: float = 0.1) -> Any:
    from verticals.core.networks import CrossEncoderNet

    return CrossEncoderNet(encoder, dropout)


def _pair_inputs(tokenizer: Any, queries: list[str], passages: list[str], max_length: int) -> Any:
    return tokenizer(
        queries,
        passages,
        padding=True,
        truncation="longest_first",
        max_length=max_length,
        return_tensors="pt",
    )


class Reranker:
    """A trained cross-encoder: ``score(query, passages)`` gives relevance probabilities."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int, card: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.card = card

    @classmethod
    def from_directory(cls, directory: str | Path, max_length: int | None = None) -> Reranker:
        from safetensors.torch import load_file

        from verticals.core.modeling import load_encoder, load_tokenizer

        directory = Path(directory)
        card = json.loads((directory / "card.json").read_text())
        if card.get("kind") != "reranking":
            raise ValueError(f"{directory} holds a {card.get('kind')} model, not a reranker")
        model = build_cross_encoder(load_encoder(str(directory / "encoder")))
        model.head.load_state_dict(load_file(str(directory / "head.safetensors")))
        tokenizer = load_tokenizer(str(directory / "encoder"))
        return cls(model, tokenizer, max_length or int(card["max_length"]), card)

    @classmethod
    def from_registry(
        cls, task: str, registry: Any = None, max_length: int | None = None
    ) -> Reranker:
        from verticals.core.registry import ModelRegistry

        registry = registry or ModelRegistry.default()
        return cls.from_directory(registry.path(task), max_length)

    @property
    def version(self) -> str:
        return f"{self.card.get('task', '?')}:v{self.card.get('version', '?')}"

    def logits(self, queries: list[str], passages: list[str], batch_size: int = 32) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(queries), batch_size):
                batch = _pair_inputs(
                    self.tokenizer,
                    queries[start : start + batch_size],
                    passages[start : start + batch_size],
                    self.max_length,
                )
                out.append(self.model(batch["input_ids"], batch["attention_mask"]).float().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Relevance probability of each passage for ``query``."""
        return 1.0 / (1.0 + np.exp(-self.logits([query] * len(passages), passages)))


def _ranks(order_scores: np.ndarray, relevant: np.ndarray) -> int:
    order = np.argsort(-order_scores, kind="stable")
    return int(np.flatnonzero(relevant[order])[0]) + 1


def rank_metrics(
    score: Any, data: RerankData, cosines: np.ndarray, rows: list[int], candidates: int
) -> dict[str, float]:
    """MRR and hit@1 of ``score(query, passages)`` and of the base encoder's cosine on the same
    candidates: each query's positives plus the base encoder's top ``candidates`` passages."""
    mrr = hit = mrr_base = hit_base = 0.0
    for i in rows:
        g = data.groups[i]
        top = [int(j) for j in np.argsort(-cosines[i])[:candidates]]
        pool = list(dict.fromkeys(top + g.positives))
        relevant = np.array([j in g.positives for j in pool])
        ranked = _ranks(np.asarray(score(g.query, [data.pool[j] for j in pool])), relevant)
        base = _ranks(cosines[i][pool], relevant)
        mrr, hit = mrr + 1 / ranked, hit + (ranked == 1)
        mrr_base, hit_base = mrr_base + 1 / base, hit_base + (base == 1)
    n = max(1, len(rows))
    return {
        "mrr": mrr / n,
        "hit@1": hit / n,
        "mrr_base": mrr_base / n,
        "hit@1_base": hit_base / n,
        "queries": float(len(rows)),
    }


def train_reranker(
    config: TrainConfig,
    registry: ModelRegistry | None = None,
    show_progress: bool = True,
    first_becomes_current: bool = True,
) -> TrainOutcome:
    """Mine negatives, train, compare with the base encoder on the test queries, register."""
    import torch
    from safetensors.torch import save_file

    from verticals.core import modeling, trainer
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    t, r, max_len = config.training, config.reranking, config.model.max_length
    data = load_groups(config)
    if config.data.max_rows and len(data.groups) > config.data.max_rows:
        keep = np.random.default_rng(config.data.split_seed).permutation(len(data.groups))
        data = data.subset(sorted(int(i) for i in keep[: config.data.max_rows]))
    if len(data.groups) < 4:
        raise ValueError(f"{config.data.path}: too few queries to train ({len(data.groups)})")
    cosines = mine_negatives(config, data)
    split = split_indices(
        len(data.groups),
        config.data.validation_fraction,
        config.data.test_fraction,
        config.data.split_seed,
        None,
    )
    validation = split.validation or split.train
    test = split.test or validation
    examples = [
        (data.groups[i].query, data.pool[j], float(j in data.groups[i].positives))
        for i in split.train
        for j in data.groups[i].positives + data.groups[i].negatives
    ]

    trainer.seed_everything(t.seed)
    device = modeling.pick_device(t.device)
    tokenizer = modeling.load_tokenizer(modeling.resolve_base_model(config.model.base))
    model = build_cross_encoder(modeling.load_encoder(config.model.base), config.model.dropout).to(
        device
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def batches(order: np.ndarray) -> Any:
        for start in range(0, len(order), t.batch_size):
            rows = [examples[int(i)] for i in order[start : start + t.batch_size]]
            inputs = _pair_inputs(
                tokenizer, [q for q, _, _ in rows], [p for _, p, _ in rows], max_len
            )
            yield (
                {k: inputs[k].to(device) for k in ("input_ids", "attention_mask")},
                {"label": torch.tensor([y for _, _, y in rows], device=device)},
            )

    def loss(net: Any, inputs: dict, targets: dict) -> torch.Tensor:
        return loss_fn(net(inputs["input_ids"], inputs["attention_mask"]), targets["label"])

    def scorer() -> Any:
        return Reranker(model, tokenizer, max_len, {}).score

    before = rank_metrics(scorer(), data, cosines, test, r.candidates)["mrr"]
    model.train()
    result = trainer.fit(
        model,
        loss,
        batches,
        len(examples),
        lambda: rank_metrics(scorer(), data, cosines, validation, r.candidates)["mrr"],
        t,
        list(model.head.parameters()),
        show_progress,
    )
    model = model.cpu()
    metrics = {**rank_metrics(scorer(), data, cosines, test, r.candidates), "mrr_untrained": before}
    gate = metrics["mrr"] > metrics["mrr_base"]

    staged = registry.staging_dir()
    model.encoder.save_pretrained(staged / "encoder", safe_serialization=True)
    tokenizer.save_pretrained(staged / "encoder")
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(staged / "head.safetensors"))
    test_groups = data.subset(list(test))
    card: dict[str, Any] = {
        "kind": "reranking",
        "method": "full",
        "base_model": config.model.base,
        "max_length": max_len,
        "heads": [],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "primary_metric": "mrr",
        "metrics": metrics,
        "gate": {
            "rule": "test MRR above the base encoder's on the same candidates",
            "passed": gate,
        },
        "data": {
            "path": str(config.data.path),
            "fingerprint": data.fingerprint(),
            "test_fingerprint": test_groups.fingerprint(),
            "rows": len(data.groups),
            "pool": len(data.pool),
            "train": len(split.train),
            "train_examples": len(examples),
            "validation": len(validation),
            "test": len(test),
        },
        "training": result.summary(device),
        "config": json.loads(config.model_dump_json()),
    }
    return registry.register_trained(
        config.task, staged, card, result.seconds, first_becomes_current and gate
    )
