"""Data-parallel training: the unchanged CLI under torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from verticals.core.registry import ModelRegistry
from verticals.serving.testing import free_port


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, make_config) -> dict:
    """One `torchrun --nproc_per_node 2 -m verticals.core.cli train` on a two-head config whose
    topic head is missing on most rows (so a batch may leave that head out of the loss)."""
    folder = tmp_path_factory.mktemp("ddp")
    rows = pd.read_csv(sample_csv).head(120)
    rows.loc[rows.index % 4 != 0, "topic"] = ""  # only every 4th row keeps its topic
    data = folder / "messages.csv"
    rows.to_csv(data, index=False)
    config = make_config(data, epochs=2, batch_size=8)
    config["heads"]["topic"]["allow_missing"] = True
    config["model"]["max_length"] = 32
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "VERTICALS_REGISTRY_DIR": str(folder / "registry"),
    }

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            "-m",
            "verticals.core.cli",
            "train",
            str(folder / "train.yaml"),
            "--no-progress",
        ]

    # torchrun must be told its rendezvous port: one free when chosen, retried if taken first
    for _ in range(3):
        done = subprocess.run(
            command(free_port()), env=env, capture_output=True, text=True, timeout=300
        )
        if "EADDRINUSE" not in done.stderr:
            break
    return {"done": done, "registry": ModelRegistry(folder / "registry"), "config": config}


def test_torchrun_trains_on_two_gloo_processes(ddp_run: dict) -> None:
    done, registry = ddp_run["done"], ddp_run["registry"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert registry.versions("mood-topic") == [1]  # rank 0 alone registered
    assert done.stdout.count("registered mood-topic v1") == 1  # and reported
    card = registry.card("mood-topic")
    training = card["training"]
    assert (training["world_size"], training["backend"]) == (2, "gloo")
    # each rank went through its own half of the training split, every epoch
    shard = -(-card["data"]["train"] // 2)
    assert training["examples_per_rank"] == [shard * 2, shard * 2]  # 2 epochs
    assert training["steps"] == -(-shard // 8) * 2  # batch_size 8 per process
    assert [h["epoch"] for h in training["history"]] == [1.0, 2.0]
    assert training["history"][-1]["train_loss"] < training["history"][0]["train_loss"]
    metrics = card["metrics"]
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["mood_accuracy"] > 0.5  # chance is 1/3


def test_probe_finds_the_parameters_no_loss_reaches(sample_csv: Path) -> None:
    """BERT's pooler is trainable but unused by mean pooling: DDP must not wait for it."""
    from verticals.core import modeling, trainer
    from verticals.core.data import Head
    from verticals.core.distributed import Distributed, unreached_parameters

    encoder = modeling.load_encoder(modeling.DEFAULT_BASE_MODEL)
    model = modeling.build_classifier(encoder, [Head("mood", ("a", "b"))])
    tokenizer = modeling.load_tokenizer(modeling.resolve_base_model(modeling.DEFAULT_BASE_MODEL))
    probe = trainer.tokenize(tokenizer, ["a short text"], 16, Distributed().device)
    unreached = unreached_parameters(model, probe)
    assert unreached and all(".pooler." in name for name in unreached)
    assert model.training  # the probe leaves the mode as it found it


def test_ranks_share_each_epoch_without_overlap() -> None:
    from verticals.core.distributed import Distributed

    ranks = [Distributed(world_size=2, rank=r) for r in (0, 1)]
    for epoch in (0, 1):
        a, b = (d.epoch_order(10, epoch, seed=3) for d in ranks)
        assert len(a) == len(b) == 5 and sorted([*a, *b]) == list(range(10))
    assert list(ranks[0].epoch_order(10, 0, 3)) != list(ranks[0].epoch_order(10, 1, 3))
    assert Distributed().shard_size(7) == 7 and ranks[0].shard_size(7) == 4
