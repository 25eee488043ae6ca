"""The training loop both tasks share: AdamW with warm-up, dynamic padding, gradient
accumulation, periodic validation with early stopping (best weights restored), progress bars.
Under torchrun the same loop trains data-parallel (see :mod:`verticals.core.distributed`)."""

from __future__ import annotations

import math
import platform
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from verticals.core.config import TrainingConfig
from verticals.core.data import MISSING, Head, LabelledTexts, TextPairs
from verticals.core.distributed import Distributed, unreached_parameters

Loss = Callable[[nn.Module, dict, dict], torch.Tensor]
"""(network, inputs, targets) -> loss; the network is the DDP wrapper when data-parallel."""


@dataclass
class TrainResult:
    best_score: float
    seconds: float
    steps: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    examples_per_rank: list[int] = field(default_factory=list)
    """Training examples each process went through (all epochs), in rank order."""

    def summary(self, device: Any, **extra: Any) -> dict[str, Any]:
        """A model card's ``training`` block."""
        return {
            "seconds": round(self.seconds, 2),
            "steps": self.steps,
            "best_validation": self.best_score,
            "stopped_early": self.stopped_early,
            "history": self.history,
            "device": str(device),
            **extra,
            "torch": torch.__version__,
            "python": platform.python_version(),
        }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int, device: torch.device) -> dict:
    """Dynamic padding: each batch is padded to its own longest text."""
    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {
        "input_ids": batch["input_ids"].to(device),
        "attention_mask": batch["attention_mask"].to(device),
    }


def classification_loss(heads: list[Head]) -> Loss:
    def loss(model: nn.Module, inputs: dict, targets: dict) -> torch.Tensor:
        logits = model(inputs["input_ids"], inputs["attention_mask"])
        total = torch.zeros((), device=inputs["input_ids"].device)
        for head in heads:
            y = targets[head.name]
            if head.multi_label:
                total = total + nn.functional.binary_cross_entropy_with_logits(logits[head.name], y)
            else:
                if bool((y != MISSING).any()):
                    total = total + nn.functional.cross_entropy(
                        logits[head.name], y, ignore_index=MISSING
                    )
        return total

    return loss


def contrastive_loss(temperature: float) -> Loss:
    """In-batch negatives (MultipleNegativesRankingLoss): query i must pick positive i
    (data-parallel: among the queries of its own process's batch)."""

    def loss(model: nn.Module, queries: dict, positives: dict) -> torch.Tensor:
        q = model(queries["input_ids"], queries["attention_mask"])
        p = model(positives["input_ids"], positives["attention_mask"])
        scores = q @ p.T / temperature
        return nn.functional.cross_entropy(scores, torch.arange(len(q), device=q.device))

    return loss


def classification_batches(
    data: LabelledTexts,
    tokenizer: Any,
    batch_size: int,
    max_length: int,
    device: torch.device,
    order: np.ndarray,
) -> Iterator[tuple[dict, dict]]:
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        inputs = tokenize(tokenizer, [data.texts[i] for i in idx], max_length, device)
        targets: dict[str, torch.Tensor] = {}
        for head in data.heads:
            values = [data.targets[head.name][i] for i in idx]
            if head.multi_label:
                hot = torch.zeros(len(idx), len(head.labels))
                for row, labels in enumerate(values):
                    hot[row, labels] = 1.0
                targets[head.name] = hot.to(device)
            else:
                targets[head.name] = torch.tensor(values, device=device)
        yield inputs, targets


def pair_batches(
    data: TextPairs,
    tokenizer: Any,
    batch_size: int,
    max_length: int,
    device: torch.device,
    order: np.ndarray,
) -> Iterator[tuple[dict, dict]]:
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2:
            continue  # a lone pair has no in-batch negative
        yield (
            tokenize(tokenizer, [data.queries[i] for i in idx], max_length, device),
            tokenize(tokenizer, [data.positives[i] for i in idx], max_length, device),
        )


def fit(
    model: nn.Module,
    loss_fn: Loss,
    batches: Callable[[np.ndarray], Iterator[tuple[dict, dict]]],
    size: int,
    validate: Callable[[], float],
    config: TrainingConfig,
    head_parameters: Sequence[nn.Parameter] = (),
    show_progress: bool = True,
    parallel: Distributed | None = None,
    varying_graph: bool = False,
) -> TrainResult:
    """Train ``model`` in place; keeps and restores the weights with the best validation score.

    ``batches(order)`` yields the batches of the training rows in ``order`` (``size`` rows).
    ``validate`` runs on rank 0 only; its score is shared so every rank takes the same decision.
    ``varying_graph``: a batch may leave some parameters out of the loss (a head whose labels
    are all missing in the batch), which DDP must be told about."""
    from transformers import get_linear_schedule_with_warmup

    parallel = parallel or Distributed()
    rng = np.random.default_rng(config.seed)

    def epoch_order(epoch: int) -> np.ndarray:
        if parallel.active:
            return parallel.epoch_order(size, epoch, config.seed)
        return rng.permutation(size)

    net = model
    if parallel.active:
        probe, _ = next(batches(epoch_order(0)))
        unreached = set(unreached_parameters(model, probe))
        for name, param in model.named_parameters():
            if name in unreached:
                param.requires_grad_(False)
        net = parallel.wrap(model, find_unused_parameters=varying_graph)
        torch.manual_seed(config.seed + parallel.rank)  # different dropout masks per rank
    batches_per_epoch = -(-parallel.shard_size(size) // config.batch_size)
    head_ids = {id(p) for p in head_parameters}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": body, "lr": config.learning_rate}]
    if head_parameters:
        groups.append({"params": list(head_parameters), "lr": config.head_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    accumulation = config.gradient_accumulation_steps
    total_steps = max(1, math.ceil(batches_per_epoch / accumulation) * config.epochs)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]

    def snapshot() -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {n: params[n].detach().to("cpu", copy=True) for n in trainable}

    best_score, best_state = -math.inf, snapshot()
    history: list[dict[str, float]] = []
    evaluations_without_gain, step, stopped = 0, 0, False
    running: list[float] = []
    examples = 0
    started = time.perf_counter()
    bar = tqdm(
        total=total_steps,
        desc="training",
        unit="step",
        disable=not (show_progress and parallel.is_main),
    )

    def evaluate(epoch: float) -> bool:
        nonlocal best_score, best_state, evaluations_without_gain
        model.eval()
        score = parallel.from_main(validate() if parallel.is_main else 0.0)
        model.train()
        train_loss = parallel.mean(float(np.mean(running)) if running else float("nan"))
        history.append(
            {"step": step, "epoch": round(epoch, 3), "train_loss": train_loss, "validation": score}
        )
        running.clear()
        bar.set_postfix(val=f"{score:.4f}", loss=f"{history[-1]['train_loss']:.4f}")
        if score > best_score:
            best_score, best_state, evaluations_without_gain = score, snapshot(), 0
            return False
        evaluations_without_gain += 1
        return config.patience > 0 and evaluations_without_gain >= config.patience

    model.train()
    for epoch in range(config.epochs):
        optimizer.zero_grad()
        for i, (a, b) in enumerate(batches(epoch_order(epoch))):
            boundary = (i + 1) % accumulation == 0 or i + 1 == batches_per_epoch
            with parallel.syncing(net, boundary):
                loss = loss_fn(net, a, b) / accumulation
                loss.backward()
            running.append(float(loss.detach()) * accumulation)
            examples += len(a["input_ids"])
            if boundary:
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                bar.update(1)
                if config.eval_every_steps and step % config.eval_every_steps == 0:
                    stopped = evaluate(epoch + (i + 1) / batches_per_epoch)
                    if stopped:
                        break
        if stopped:
            break
        if not config.eval_every_steps:
            stopped = evaluate(epoch + 1.0)
            if stopped:
                break
    bar.close()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in best_state.items():
            params[name].copy_(value)
    model.eval()
    return TrainResult(
        best_score,
        time.perf_counter() - started,
        step,
        stopped,
        history,
        parallel.gather(examples),
    )
