"""Data-parallel training under ``torchrun``: the same config, N processes.

``torchrun --nproc_per_node N -m verticals.core.cli train CONFIG`` sets WORLD_SIZE, RANK and
LOCAL_RANK; :func:`launch` then opens a process group (gloo on the CPU, nccl on CUDA with one
GPU per process), and the trainer shards each epoch with a ``DistributedSampler``, wraps the model
in ``DistributedDataParallel`` and lets rank 0 decide validation and early stopping for everyone.
``batch_size`` is per process: the effective batch is ``batch_size * world_size``.
Without torchrun every helper here is a no-op and training runs exactly as in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: its rank among ``world_size`` and the device it trains on."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard_size(self, size: int) -> int:
        """Rows each process sees per epoch (the sampler pads the last shard)."""
        return -(-size // self.world_size)

    def epoch_order(self, size: int, epoch: int, seed: int) -> np.ndarray:
        """This rank's shuffled share of ``range(size)`` for ``epoch``."""
        from torch.utils.data import DistributedSampler

        rows: Any = range(size)  # a sized sequence of indices is all the sampler reads
        sampler: DistributedSampler[int] = DistributedSampler(
            rows, self.world_size, self.rank, shuffle=True, seed=seed
        )
        sampler.set_epoch(epoch)
        return np.fromiter(iter(sampler), dtype=np.int64)

    def wrap(self, model: nn.Module, find_unused_parameters: bool) -> nn.Module:
        """The model in ``DistributedDataParallel`` (gradients averaged over ranks).

        DDP gets a process group of its own because it keeps its group alive past
        ``destroy_process_group`` (seen with torch 2.13). A group left alive at exit may still
        be freeing a collective's tensors on a worker thread while the interpreter shuts down,
        which aborts the process ("terminate called without an active exception"). So the
        default group, which carries the collectives that end training (:meth:`from_main`,
        :meth:`gather`), is really destroyed when :func:`launch` ends, and DDP's last gradient
        exchange is long finished by then."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(
            model,
            device_ids=ids,
            find_unused_parameters=find_unused_parameters,
            process_group=dist.new_group(backend=self.backend),
        )

    def syncing(self, net: nn.Module, sync: bool) -> AbstractContextManager[Any]:
        """DDP averages gradients only on the micro-batch that ends an accumulation."""
        if self.active and not sync:
            return net.no_sync()  # type: ignore[operator,no-any-return]
        return nullcontext()

    def from_main(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (the others wait for it)."""
        if not self.active:
            return value
        box: list[Any] = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[no-any-return]

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def gather(self, value: int) -> list[int]:
        """``value`` from every rank, in rank order."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return [int(v) for v in out]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


def environment() -> tuple[int, int, int]:
    """(world size, rank, local rank) as torchrun sets them; (1, 0, 0) outside torchrun."""
    return (
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def is_main_process() -> bool:
    return environment()[1] == 0


@contextmanager
def launch(device_choice: str = "auto") -> Iterator[Distributed]:
    """Join torchrun's process group for the block (and leave it after), or run alone."""
    from verticals.core.modeling import pick_device

    world_size, rank, local_rank = environment()
    device = pick_device(device_choice)
    if world_size <= 1:
        yield Distributed(device=device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        yield Distributed(world_size, rank, local_rank, device, backend)
    finally:
        if owned:
            dist.destroy_process_group()


def unreached_parameters(model: nn.Module, inputs: dict[str, torch.Tensor]) -> list[str]:
    """Trainable parameters that the forward pass never uses (e.g. BERT's pooler, which mean
    pooling ignores). They get no gradient in one process either; DDP needs them frozen."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    was_training = model.training
    model.eval()  # no dropout: the probe draws no random numbers
    out = model(inputs["input_ids"], inputs["attention_mask"])
    outputs = list(out.values()) if isinstance(out, dict) else [out]
    total = sum(o.float().sum() for o in outputs)
    grads = torch.autograd.grad(total, [p for _, p in named], allow_unused=True)
    model.train(was_training)
    return [n for (n, _), g in zip(named, grads, strict=True) if g is None]
