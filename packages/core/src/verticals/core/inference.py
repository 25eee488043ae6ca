"""Batched, thread-safe inference that every service uses.

``Predictor``: labels and probabilities per head, all heads in one forward pass.
``Encoder``: L2-normalised vectors. Both run on a backend: torch (fp32, CPU or CUDA) or
ONNX Runtime (the fast CPU form written by ``core.onnx``, optionally int8-quantised).
Texts are sorted by length before batching so that padding stays small.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np

from verticals.core.data import Head
from verticals.core.onnx import ONNX_FILES

Form = Literal["torch", "onnx", "onnx-int8"]


class Backend(Protocol):
    """Runs one padded batch; returns one array per output (head name or ``embedding``)."""

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray
    ) -> dict[str, np.ndarray]: ...


class TorchBackend:
    def __init__(self, model: Any, device: Any = None) -> None:
        import torch

        from verticals.core.modeling import pick_device
        from verticals.core.settings import get_settings

        self.torch = torch
        self.device = device or pick_device(get_settings().device)  # VERTICALS_DEVICE
        self.model = model.to(self.device).eval()

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            out = self.model(
                torch.from_numpy(input_ids).to(self.device),
                torch.from_numpy(attention_mask).to(self.device),
            )
        if isinstance(out, dict):
            return {k: v.float().cpu().numpy() for k, v in out.items()}
        return {"embedding": out.float().cpu().numpy()}


class OnnxBackend:
    """An ONNX Runtime session on the CPU. Its threads sleep rather than spin between runs:
    spinning doubled the CPU time per text when request threads shared the cores."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        from verticals.core.settings import get_settings

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = get_settings().onnx_threads if threads is None else threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {
            "input_ids": input_ids.astype(np.int64),
            "attention_mask": attention_mask.astype(np.int64),
        }
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds), strict=True))


class _Batched:
    """Tokenise, length-sort, batch, run, restore order. One lock makes it thread-safe."""

    def __init__(self, backend: Backend, tokenizer: Any, max_length: int, batch_size: int) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def run(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> dict[str, np.ndarray]:
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return {}
        with self._lock:
            encoded = self.tokenizer(
                list(texts), truncation=True, max_length=self.max_length, padding=False
            )["input_ids"]
            order = np.argsort([len(ids) for ids in encoded], kind="stable")
            pad = self.tokenizer.pad_token_id or 0
            chunks: dict[str, list[np.ndarray]] = {}
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                width = max(len(encoded[i]) for i in idx)
                ids = np.full((len(idx), width), pad, dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, i in enumerate(idx):
                    ids[row, : len(encoded[i])] = encoded[i]
                    mask[row, : len(encoded[i])] = 1
                for name, values in self.backend(ids, mask).items():
                    chunks.setdefault(name, []).append(values)
                if on_batch:
                    on_batch(len(idx))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return {name: np.concatenate(parts)[inverse] for name, parts in chunks.items()}


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _load(directory: Path, form: Form, device: Any) -> tuple[Backend, Any, dict[str, Any]]:
    from verticals.core.modeling import load_tokenizer, resolve_base_model

    card = json.loads((directory / "card.json").read_text())
    if form == "torch":
        from verticals.core.modeling import load_trained

        model, tokenizer, card = load_trained(directory)
        return TorchBackend(model, device), tokenizer, card
    path = directory / "onnx" / ONNX_FILES[form]
    if not path.exists():  # exported once, on first use (`verticals models export` does it too)
        from verticals.core.onnx import export_onnx

        export_onnx(directory, quantize=form == "onnx-int8")
    source = directory / "encoder" if (directory / "encoder").is_dir() else None
    tokenizer = load_tokenizer(str(source) if source else resolve_base_model(card["base_model"]))
    return OnnxBackend(path), tokenizer, card


class _Loaded:
    """What ``Predictor`` and ``Encoder`` share: loading from a model folder or the registry
    (torch or an ONNX form), the card, the batched runner and the ``task:vN`` version."""

    kind: ClassVar[str]

    def __init__(
        self,
        backend: Backend,
        tokenizer: Any,
        max_length: int = 128,
        batch_size: int = 64,
        card: dict[str, Any] | None = None,
    ) -> None:
        self.card = card or {}
        self._batched = _Batched(backend, tokenizer, max_length, batch_size)

    @classmethod
    def _from_card(
        cls, backend: Backend, tokenizer: Any, card: dict[str, Any], batch_size: int
    ) -> Self:
        return cls(backend, tokenizer, card["max_length"], batch_size, card)

    @classmethod
    def from_directory(
        cls, directory: str | Path, form: Form = "torch", device: Any = None, batch_size: int = 64
    ) -> Self:
        backend, tokenizer, card = _load(Path(directory), form, device)
        if card["kind"] != cls.kind:
            raise ValueError(f"{directory} holds a {card['kind']} model, not a {cls.kind} model")
        return cls._from_card(backend, tokenizer, {**card, "form": form}, batch_size)

    @classmethod
    def from_registry(
        cls,
        task: str,
        version: int | None = None,
        form: Form = "torch",
        registry: Any = None,
        fallback_to_base: bool = False,
        **kwargs: Any,
    ) -> Self:
        """The task's current model (or ``version``); with ``fallback_to_base``, the base model
        when the task has none (encoders only)."""
        from verticals.core.registry import ModelRegistry, RegistryError

        registry = registry or ModelRegistry.default()
        try:
            path = registry.path(task, version)
        except RegistryError:
            if not fallback_to_base:
                raise
            return cls._base_model(form, **kwargs)
        return cls.from_directory(path, form, **kwargs)

    @classmethod
    def _base_model(cls, form: Form, **kwargs: Any) -> Self:
        raise ValueError(f"a {cls.kind} model has no base model to fall back to")

    @property
    def version(self) -> str:
        return f"{self.card.get('task', '?')}:v{self.card.get('version', '?')}"


class Predictor(_Loaded):
    """Labels and probabilities for every head of a classification model."""

    kind = "classification"

    def __init__(
        self,
        backend: Backend,
        tokenizer: Any,
        heads: list[Head],
        max_length: int = 128,
        batch_size: int = 64,
        card: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backend, tokenizer, max_length, batch_size, card)
        self.heads = heads

    @classmethod
    def _from_card(
        cls, backend: Backend, tokenizer: Any, card: dict[str, Any], batch_size: int
    ) -> Self:
        heads = [Head.from_dict(h) for h in card["heads"]]
        return cls(backend, tokenizer, heads, card["max_length"], batch_size, card)

    def predict_proba(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> dict[str, np.ndarray]:
        """Per head, an array (n_texts, n_labels) of probabilities."""
        logits = self._batched.run(texts, on_batch)
        if not logits:
            return {h.name: np.zeros((0, len(h.labels)), dtype=np.float32) for h in self.heads}
        return {
            h.name: (_sigmoid if h.multi_label else _softmax)(logits[h.name]) for h in self.heads
        }

    def predict(self, texts: Sequence[str], threshold: float = 0.5) -> list[dict[str, Any]]:
        """Per text, per head: ``label`` (or ``labels`` when multi-label) and ``probabilities``."""
        probs = self.predict_proba(texts)
        results: list[dict[str, Any]] = [{} for _ in texts]
        for head in self.heads:
            for i, row in enumerate(probs[head.name]):
                entry: dict[str, Any] = {
                    "probabilities": {
                        lab: round(float(p), 6) for lab, p in zip(head.labels, row, strict=True)
                    }
                }
                if head.multi_label:
                    entry["labels"] = [
                        lab for lab, p in zip(head.labels, row, strict=True) if p >= threshold
                    ]
                else:
                    entry["label"] = head.labels[int(row.argmax())]
                    entry["score"] = float(row.max())
                results[i][head.name] = entry
        return results

    def predict_indices(self, texts: Sequence[str], threshold: float = 0.5) -> dict[str, list]:
        """Per head, predicted label indices (lists of them for multi-label heads)."""
        probs = self.predict_proba(texts)
        out: dict[str, list] = {}
        for head in self.heads:
            p = probs[head.name]
            out[head.name] = (
                [np.flatnonzero(row >= threshold).tolist() for row in p]
                if head.multi_label
                else p.argmax(axis=1).tolist()
            )
        return out


class Encoder(_Loaded):
    """Unit-length text vectors from a trained embedding model or from a base model."""

    kind = "embedding"
    _dimension: int | None = None  # measured on first use

    @classmethod
    def from_base(
        cls,
        base: str | None = None,
        device: Any = None,
        max_length: int = 128,
        batch_size: int = 64,
        form: Form = "torch",
    ) -> Encoder:
        """The pretrained encoder, untouched (e.g. all-MiniLM-L6-v2 from its package). An ONNX
        ``form`` is exported once into the cache folder (``VERTICALS_CACHE_DIR``)."""
        from verticals.core.config import DEFAULT_BASE_MODEL
        from verticals.core.modeling import (
            build_text_encoder,
            load_encoder,
            load_tokenizer,
            resolve_base_model,
        )
        from verticals.core.settings import get_settings

        base = base or DEFAULT_BASE_MODEL
        tokenizer = load_tokenizer(resolve_base_model(base))
        card = {"task": "base", "version": 0, "base_model": base, "kind": "embedding"}
        backend: Backend
        if form == "torch":
            backend = TorchBackend(build_text_encoder(load_encoder(base)), device)
        else:
            folder = get_settings().cache_dir / "onnx" / re.sub(r"[^A-Za-z0-9._-]+", "_", base)
            path = folder / ONNX_FILES[form]
            if not path.exists():
                from verticals.core.onnx import write_onnx

                model = build_text_encoder(load_encoder(base))
                write_onnx(model, tokenizer, ["embedding"], folder, form == "onnx-int8")
            backend = OnnxBackend(path)
        return cls(backend, tokenizer, max_length, batch_size, {**card, "form": form})

    @classmethod
    def _base_model(cls, form: Form, **kwargs: Any) -> Encoder:
        return cls.from_base(form=form, **kwargs)

    @property
    def version(self) -> str:
        """``task:vN``, plus ``+form`` for an ONNX form (its vectors differ slightly)."""
        form = self.card.get("form", "torch")
        suffix = "" if form == "torch" else f"+{form}"
        return f"{self.card.get('task', '?')}:v{self.card.get('version', '?')}{suffix}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.encode(["dimension probe"]).shape[1])
        return self._dimension

    def encode(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = self._batched.run(texts, on_batch)
        if not out:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        vectors = out["embedding"].astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)
