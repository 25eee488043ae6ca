"""``modeling`` directly: base-model resolution (the packaged MiniLM offline, a folder, any
other id untouched), the device choice, and save/load of only what training changed (a LoRA
classifier: adapter and heads, no encoder copy; a fully fine-tuned encoder: its weights and
tokenizer), each loading back to the same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from verticals.core import modeling
from verticals.core.config import DEFAULT_BASE_MODEL, LoraConfig
from verticals.core.data import Head

TEXTS = ["the shares fell sharply", "a calm day on the markets"]


def test_resolve_base_model(tmp_path: Path) -> None:
    packaged = Path(modeling.resolve_base_model(DEFAULT_BASE_MODEL))
    assert packaged.is_dir() and (packaged / "config.json").exists()  # offline, from PyPI
    assert modeling.resolve_base_model(str(tmp_path)) == str(tmp_path)
    assert modeling.resolve_base_model("someone/unknown-model") == "someone/unknown-model"


def test_pick_device() -> None:
    assert modeling.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert modeling.pick_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            modeling.pick_device("cuda")


def outputs(model: torch.nn.Module, tokenizer: object) -> dict[str, torch.Tensor]:
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        out = model.eval()(batch["input_ids"], batch["attention_mask"])
    return out if isinstance(out, dict) else {"embedding": out}


def save(model: torch.nn.Module, folder: Path, method: str, card: dict) -> None:
    modeling.save_trained(model, folder, method, DEFAULT_BASE_MODEL)
    (folder / "card.json").write_text(json.dumps({"base_model": DEFAULT_BASE_MODEL, **card}))


@pytest.mark.slow
def test_lora_classifier_saves_adapter_and_heads_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    heads = [Head("mood", ("bad", "good")), Head("tags", ("a", "b", "c"), multi_label=True)]
    encoder = modeling.add_lora(modeling.load_encoder(DEFAULT_BASE_MODEL), LoraConfig(r=4))
    lora_b = next(p for n, p in encoder.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        lora_b.normal_()  # as if trained: the adapter changes the outputs
    model = modeling.build_classifier(encoder, heads)
    tokenizer = modeling.load_tokenizer(modeling.resolve_base_model(DEFAULT_BASE_MODEL))
    expected = outputs(model, tokenizer)
    card = {"kind": "classification", "heads": [h.to_dict() for h in heads]}
    save(model, tmp_path, "lora", card)
    saved = {p.name for p in tmp_path.iterdir()}
    assert saved == {"adapter", "heads.safetensors", "card.json"}  # no copy of the base
    size = sum(f.stat().st_size for f in (tmp_path / "adapter").rglob("*") if f.is_file())
    assert size < 2_000_000  # a few hundred kB, not the 90 MB encoder

    loaded, loaded_tokenizer, loaded_card = modeling.load_trained(tmp_path)
    assert loaded_card["kind"] == "classification" and not loaded.training
    got = outputs(loaded, loaded_tokenizer)
    for head in heads:
        torch.testing.assert_close(got[head.name], expected[head.name], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_full_encoder_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = modeling.build_text_encoder(modeling.load_encoder(DEFAULT_BASE_MODEL))
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # a changed weight must be what loads back
    tokenizer = modeling.load_tokenizer(modeling.resolve_base_model(DEFAULT_BASE_MODEL))
    expected = outputs(model, tokenizer)["embedding"]
    save(model, tmp_path, "full", {"kind": "embedding", "heads": []})
    assert (tmp_path / "encoder" / "model.safetensors").exists()
    assert (tmp_path / "encoder" / "tokenizer.json").exists()
    loaded, loaded_tokenizer, _ = modeling.load_trained(tmp_path)
    got = outputs(loaded, loaded_tokenizer)["embedding"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)  # unit length
