"""A model registry on a local directory: versions, model cards, promote and rollback.

Layout::

    <root>/<task>/v<N>/      card.json, README.md, encoder/ or adapter/, heads.safetensors,
                             test.jsonl (the held-out split), reports/ (JSON and PNG)
    <root>/<task>/state.json {"current": N, "history": [...]}  (history: promotions, for rollback)

Writes are atomic (staging directory + rename, state via os.replace) and serialised by a file lock.
The registry is storage only: it imports nothing above it. A promotion that must re-score the
current model on the candidate's test set is given a ``Scorer`` (``verticals.core.training``'s
``promote`` passes the one that loads and scores models).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RegistryError(LookupError):
    """A task or version that does not exist, or a refused promotion."""


Scorer = Callable[[Path, Path], dict[str, float]]
"""``scorer(model_dir, candidate_dir)``: the metrics of the model in ``model_dir`` on the
held-out data stored with the candidate in ``candidate_dir``."""


@dataclass(frozen=True)
class TrainOutcome:
    """What registering a trained model returned."""

    task: str
    version: int
    path: Path
    metrics: dict[str, float]
    seconds: float
    current: bool


@dataclass(frozen=True)
class Promotion:
    task: str
    version: int
    previous: int | None
    metric: str
    candidate_score: float | None
    current_score: float | None
    forced: bool


class ModelRegistry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def default(cls) -> ModelRegistry:
        from verticals.core.settings import get_settings

        return cls(get_settings().registry_dir)

    # ---- reading -------------------------------------------------------------------------

    def tasks(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def versions(self, task: str) -> list[int]:
        folder = self.root / task
        if not folder.is_dir():
            return []
        return sorted(
            int(p.name[1:])
            for p in folder.iterdir()
            if p.is_dir() and p.name[:1] == "v" and p.name[1:].isdigit()
        )

    def state(self, task: str) -> dict[str, Any]:
        path = self.root / task / "state.json"
        if not path.exists():
            return {"current": None, "history": []}
        return json.loads(path.read_text())

    def current_version(self, task: str) -> int | None:
        return self.state(task)["current"]

    def path(self, task: str, version: int | None = None) -> Path:
        """The directory of ``version``, or of the task's current model when None."""
        if version is None:
            version = self.current_version(task)
            if version is None:
                known = ", ".join(self.tasks()) or "none"
                raise RegistryError(
                    f"no current model for task '{task}' in {self.root} (tasks: {known}); "
                    f"train one with `verticals train CONFIG`"
                )
        path = self.root / task / f"v{version}"
        if not (path / "card.json").exists():
            raise RegistryError(f"task '{task}' has no version {version}")
        return path

    def card(self, task: str, version: int | None = None) -> dict[str, Any]:
        card = json.loads((self.path(task, version) / "card.json").read_text())
        card["current"] = card["version"] == self.current_version(task)
        return card

    def cards(self, task: str | None = None) -> list[dict[str, Any]]:
        tasks = [task] if task else self.tasks()
        return [self.card(t, v) for t in tasks for v in self.versions(t)]

    # ---- writing -------------------------------------------------------------------------

    @contextmanager
    def _locked(self, task: str) -> Iterator[None]:
        folder = self.root / task
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_state(self, task: str, state: dict[str, Any]) -> None:
        folder = self.root / task
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, indent=2)
        os.replace(tmp, folder / "state.json")

    def staging_dir(self) -> Path:
        """A scratch directory on the registry's file system, to be passed to ``register``."""
        (self.root / ".staging").mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.root / ".staging"))

    def register(
        self, task: str, staged: Path, card: dict[str, Any], first_becomes_current: bool = True
    ) -> int:
        """File ``staged`` as the task's next version; by default a task's first version
        becomes current (services that must beat a base model first pass False)."""
        with self._locked(task):
            version = max(self.versions(task), default=0) + 1
            card = {**card, "task": task, "version": version}
            (staged / "card.json").write_text(json.dumps(card, indent=2, default=str))
            (staged / "README.md").write_text(render_model_card(card))
            target = self.root / task / f"v{version}"
            os.replace(staged, target)
            state = self.state(task)
            if state["current"] is None and first_becomes_current:
                self._write_state(task, {"current": version, "history": [version]})
        return version

    def register_trained(
        self,
        task: str,
        staged: Path,
        card: dict[str, Any],
        seconds: float,
        first_becomes_current: bool = True,
    ) -> TrainOutcome:
        """``register`` a freshly trained model; its card's ``metrics`` are the outcome's."""
        version = self.register(task, staged, card, first_becomes_current)
        return TrainOutcome(
            task,
            version,
            self.path(task, version),
            card["metrics"],
            seconds,
            self.current_version(task) == version,
        )

    def update_card(self, task: str, version: int, **fields: Any) -> None:
        with self._locked(task):
            path = self.path(task, version) / "card.json"
            card = {**json.loads(path.read_text()), **fields}
            path.write_text(json.dumps(card, indent=2, default=str))
            (path.parent / "README.md").write_text(render_model_card(card))

    def promote(
        self, task: str, version: int, force: bool = False, scorer: Scorer | None = None
    ) -> Promotion:
        """Make ``version`` current unless it scores worse than the current model on the same
        test set (the candidate's held-out split; the current model is re-scored on it by
        ``scorer`` unless both share that split). Without a scorer such a promotion is refused
        unless forced."""
        candidate = self.card(task, version)
        metric = candidate["primary_metric"]
        current_version = self.current_version(task)
        candidate_score = candidate["metrics"].get(metric)
        current_score = None
        if current_version is not None and current_version != version and not force:
            current_score = self._score_on(task, current_version, candidate, scorer)
            if current_score is not None and candidate_score < current_score:
                raise RegistryError(
                    f"refused: {task} v{version} scores {metric}={candidate_score:.4f} on its "
                    f"test set, below the current v{current_version} ({current_score:.4f} on the "
                    f"same set); use --force to promote anyway"
                )
        with self._locked(task):
            state = self.state(task)
            history = [v for v in state["history"] if v != version] + [version]
            self._write_state(task, {"current": version, "history": history})
        return Promotion(
            task, version, current_version, metric, candidate_score, current_score, force
        )

    def _score_on(
        self, task: str, version: int, candidate: dict[str, Any], scorer: Scorer | None
    ) -> float | None:
        current = self.card(task, version)
        metric = candidate["primary_metric"]
        if current["data"].get("test_fingerprint") == candidate["data"].get("test_fingerprint"):
            return current["metrics"].get(metric)
        if scorer is None:
            raise RegistryError(
                f"{task} v{version} must be re-scored on v{candidate['version']}'s test set and "
                f"no scorer was given (promote through verticals.core.training.promote)"
            )
        return scorer(self.path(task, version), self.path(task, candidate["version"])).get(metric)

    def rollback(self, task: str) -> int:
        """Return to the model that was current before the last promotion."""
        with self._locked(task):
            state = self.state(task)
            if len(state["history"]) < 2:
                raise RegistryError(f"task '{task}' has no earlier model to roll back to")
            history = state["history"][:-1]
            self._write_state(task, {"current": history[-1], "history": history})
            return int(history[-1])

    def import_version(self, source: Path, first_becomes_current: bool = True) -> int:
        """Copy a saved model directory (e.g. a default model shipped in ``shared/models``) in
        as the next version of the task named by its card."""
        card = json.loads((source / "card.json").read_text())
        staged = self.staging_dir()
        shutil.copytree(source, staged, dirs_exist_ok=True)
        card.pop("current", None)
        card["imported_from"] = str(source)
        return self.register(card["task"], staged, card, first_becomes_current)

    def ensure(self, source: Path) -> int:
        """The task's current version, importing ``source`` first if the task has none."""
        task = json.loads((source / "card.json").read_text())["task"]
        current = self.current_version(task)
        return current if current is not None else self.import_version(source)


def render_model_card(card: dict[str, Any]) -> str:
    """A human-readable model card (README.md next to the weights)."""
    lines = [
        f"# {card['task']} v{card['version']}",
        "",
        f"- kind: {card['kind']} ({card['method']} fine-tuning)",
        f"- base model: {card['base_model']}",
        f"- created: {card['created_at']}",
        f"- data: {card['data'].get('path')} (fingerprint {card['data'].get('fingerprint')}, "
        f"{card['data'].get('rows')} rows; train/validation/test "
        f"{card['data'].get('train')}/{card['data'].get('validation')}/{card['data'].get('test')})",
    ]
    for head in card.get("heads", []):
        lines.append(
            f"- head `{head['name']}`: {', '.join(head['labels'])}"
            + (" (multi-label)" if head["multi_label"] else "")
        )
    lines += ["", "## Test metrics", ""]
    lines += [
        f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}"
        for k, v in card.get("metrics", {}).items()
    ]
    lines += [
        "",
        "## Training config",
        "",
        "```json",
        json.dumps(card.get("config", {}), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
