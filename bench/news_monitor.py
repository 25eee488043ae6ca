"""make bench-news: throughput and latency of the news monitor on the real embedded broker.

Side by side in one run, on the same machine and headlines (the demo feed's titles, made unique):
- model_only: the default model's Predictor on batches of the consumer's batch size, no Kafka,
  in the form the monitor runs (``model_form``: int8 ONNX by default) and in the other form;
- e2e: N items fill the input topic first (the load generator's CPU is not in the timed
  window), then the monitor consumes, classifies (one call per poll), emits enriched records,
  updates alert windows, stores them and commits; N / wall time from its first poll that
  returned items to the last output flushed and committed;
- latency: publish -> classified (input record timestamp -> output record timestamp) at a steady
  load of half the measured e2e throughput;
- naive: a consumer that polls one message at a time, calls a transformers text-classification
  pipeline on it (same MiniLM encoder, one head: the same forward cost per text) and publishes.
Writes bench/results/news_monitor.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

N = int(os.environ.get("BENCH_NEWS_N", "4000"))
NAIVE_N = int(os.environ.get("BENCH_NEWS_NAIVE_N", "300"))
LATENCY_SECONDS = float(os.environ.get("BENCH_NEWS_LATENCY_SECONDS", "20"))
BATCH = int(os.environ.get("BENCH_NEWS_BATCH", "256"))
"""Records per poll (the monitor's ``max_batch``): one model call, one transaction, one commit."""
MODEL_BATCH = int(os.environ.get("BENCH_NEWS_MODEL_BATCH", "64"))
"""Texts per forward pass (``model_batch``), the same on both sides."""
ROUNDS = int(os.environ.get("BENCH_NEWS_ROUNDS", "5"))
OUT = Path(__file__).parent / "results" / "news_monitor.json"
FORM_NAMES = {"torch": "fp32 (torch, LoRA merged)", "onnx-int8": "int8 (ONNX Runtime, dynamic)"}


def items(n: int, tag: str) -> list[bytes]:
    from verticals.news_monitor.feed import read_lines
    from verticals.news_monitor.pipeline import decode
    from verticals.news_monitor.schemas import NewsItem
    from verticals.news_monitor.settings import shared_dir

    base = [
        json.loads(line)
        for line in read_lines(shared_dir() / "demo_headlines.jsonl")
        if isinstance(decode(line), NewsItem)
    ]
    out = []
    for i in range(n):
        item = dict(base[i % len(base)])
        item["id"] = f"{tag}-{i}"
        out.append(json.dumps(item).encode())
    return out


def settings_for(bootstrap: str, tag: str, data_dir: Path, **extra: Any) -> Any:
    from verticals.news_monitor.testing import make_settings

    return make_settings(
        bootstrap,
        tag,
        data_dir,
        max_batch=BATCH,
        model_batch=MODEL_BATCH,
        poll_timeout_ms=50,
        lag_interval_s=5.0,
        **extra,
    )


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, all threads, or of process ``pid``."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_model_only(
    model: Any, texts: list[str], in_thread: bool = True, cpu: list[float] | None = None
) -> float:
    """Calls of BATCH texts (a poll's worth, cut into MODEL_BATCH passes by the Predictor, as the
    monitor calls it); by default in a worker thread, as the monitor runs it (on this machine
    torch's main thread is several times slower under contention). ``cpu`` gets the CPU
    microseconds per message."""
    result: list[float] = []

    def run() -> None:
        model.predict_proba(texts[:BATCH])  # warm-up
        start, used = time.perf_counter(), cpu_seconds()
        for i in range(0, len(texts), BATCH):
            model.predict_proba(texts[i : i + BATCH])
        result.append(len(texts) / (time.perf_counter() - start))
        if cpu is not None:
            cpu.append((cpu_seconds() - used) / len(texts) * 1e6)

    if not in_thread:
        run()
        return result[0]
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return result[0]


def run_monitor(settings: Any, model: Any) -> Any:
    from verticals.news_monitor.api import build_monitor
    from verticals.news_monitor.consumer import ensure_topics
    from verticals.news_monitor.testing import wait_for

    ensure_topics(settings)
    monitor = build_monitor(settings, model)
    monitor.start()
    wait_for(lambda: monitor.status["assigned"], 30, every=0.1)
    return monitor


def bench_e2e(broker: Any, model: Any, data_dir: Path, run: int = 0) -> dict[str, float]:
    """Messages per second, the mean records per poll, and the CPU microseconds per message of
    this process (the monitor, all threads) and of the broker."""
    from verticals.news_monitor.api import build_monitor
    from verticals.news_monitor.consumer import ensure_topics
    from verticals.news_monitor.feed import produce
    from verticals.news_monitor.testing import wait_for

    settings = settings_for(broker.bootstrap, f"e2e{run}", data_dir / f"e2e{run}")
    ensure_topics(settings)
    produce(settings, items(N, f"e2e{run}"))  # the topic is full before the monitor starts
    monitor = build_monitor(settings, model)
    monitor.start()
    try:
        wait_for(lambda: monitor.metrics.messages_in._value.get() > 0, 60, every=0.001)
        start = time.perf_counter()  # the first poll returned items
        used, broker_used = cpu_seconds(), cpu_seconds(broker.process.pid)
        wait_for(lambda: monitor.metrics.messages_out._value.get() >= N, 600, every=0.02)
        rate = N / (time.perf_counter() - start)
        used, broker_used = cpu_seconds() - used, cpu_seconds(broker.process.pid) - broker_used
        (metric,) = monitor.metrics.batch_size.collect()
        samples = {s.name: s.value for s in metric.samples}
        return {
            "rate": rate,
            "poll": samples["news_batch_size_sum"] / samples["news_batch_size_count"],
            "cpu_us": used / N * 1e6,
            "broker_cpu_us": broker_used / N * 1e6,
        }
    finally:
        monitor.stop()


def bench_latency(bootstrap: str, model: Any, data_dir: Path, rate: float) -> dict[str, Any]:
    from verticals.news_monitor.feed import produce, read_topic
    from verticals.news_monitor.testing import wait_for

    settings = settings_for(bootstrap, "latency", data_dir / "latency")
    monitor = run_monitor(settings, model)
    count = max(int(rate * LATENCY_SECONDS), 50)
    try:
        produce(settings, items(count, "lat"), rate=rate)
        wait_for(lambda: monitor.metrics.messages_out._value.get() >= count, 300, every=0.05)
    finally:
        monitor.stop()
    latencies = []
    for msg in read_topic(settings, settings.output_topic, timeout_s=2.0):
        record = json.loads(msg.value)
        latencies.append(msg.timestamp - record["source_timestamp_ms"])
    arr = np.array(latencies, dtype=float)
    return {
        "messages": len(latencies),
        "rate_msgs_per_s": round(rate, 1),
        "p50_latency_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_latency_ms": round(float(np.percentile(arr, 99)), 1),
        "max_latency_ms": round(float(arr.max()), 1),
    }


def bench_naive(bootstrap: str, data_dir: Path) -> float:
    """One message per poll, one pipeline call per message, one send per message."""
    from kafka import KafkaConsumer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from verticals.core.config import DEFAULT_BASE_MODEL
    from verticals.core.modeling import resolve_base_model
    from verticals.news_monitor.consumer import ensure_topics, make_producer
    from verticals.news_monitor.feed import produce

    settings = settings_for(bootstrap, "naive", data_dir / "naive")
    ensure_topics(settings)
    path = resolve_base_model(DEFAULT_BASE_MODEL)
    classifier = pipeline(
        "text-classification",
        model=AutoModelForSequenceClassification.from_pretrained(path, num_labels=3),
        tokenizer=AutoTokenizer.from_pretrained(path),
        device=-1,
    )
    classifier("warm up")
    produce(settings, items(NAIVE_N, "naive"))
    consumer = KafkaConsumer(
        settings.input_topic,
        bootstrap_servers=bootstrap,
        group_id="naive",
        auto_offset_reset="earliest",
        max_poll_records=1,
        session_timeout_ms=10_000,
    )
    producer = make_producer(settings)
    done = 0
    start = None
    while done < NAIVE_N:
        for batch in consumer.poll(timeout_ms=200, max_records=1).values():
            for msg in batch:
                start = start or time.perf_counter()
                item = json.loads(msg.value)
                label = classifier(item["title"])[0]
                item["label"] = label
                producer.send(settings.output_topic, json.dumps(item).encode())
                done += 1
    producer.flush()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    producer.close()
    return NAIVE_N / elapsed


@contextmanager
def fresh_broker(folder: Path) -> Iterator[Any]:
    """An embedded noida-db broker on a new data folder (a ``NoidaBroker``, started)."""
    from verticals.news_monitor.broker import NoidaBroker

    broker = NoidaBroker(folder)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def main() -> None:
    from verticals.core.inference import Form, Predictor
    from verticals.core.registry import ModelRegistry
    from verticals.news_monitor.pipeline import model_form
    from verticals.news_monitor.settings import NewsSettings, shared_dir

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        registry = ModelRegistry(data_dir / "registry")
        registry.ensure(shared_dir() / "model")
        # the form the monitor runs (VERTICALS_NEWS_MODEL_FORM, default auto: the card decides)
        settings = NewsSettings()
        task = settings.model_task
        form = model_form(settings.model_form, registry.card(task))
        other: Form = "torch" if form == "onnx-int8" else "onnx-int8"
        model = Predictor.from_registry(task, registry=registry, batch_size=MODEL_BATCH, form=form)
        other_model = Predictor.from_registry(
            task, registry=registry, batch_size=MODEL_BATCH, form=other
        )
        texts = [json.loads(x)["title"] for x in items(N, "m")]
        load_before = os.getloadavg()
        other_runs = [bench_model_only(other_model, texts)]
        # model-only and e2e alternate (model, e2e, model, e2e, ..., model) so both sides see
        # the same machine; each e2e run is compared with the mean of the model-only runs
        # around it, and the median of those ratios is reported. Every Kafka phase gets a fresh
        # embedded broker: noida-db slows down as the data of earlier phases piles up.
        # The CPU time per message of both sides (the e2e's with the broker's) gives a second
        # ratio that a machine shared with other work distorts far less than the wall time.
        model_cpu: list[float] = []
        model_runs = [bench_model_only(model, texts, cpu=model_cpu)]
        runs: list[dict[str, float]] = []
        for run in range(ROUNDS):
            with fresh_broker(data_dir / f"broker-e2e{run}") as broker:
                runs.append(bench_e2e(broker, model, data_dir, run))
            model_runs.append(bench_model_only(model, texts, cpu=model_cpu))
        e2e_runs = [r["rate"] for r in runs]
        ratios = [e / np.mean(model_runs[i : i + 2]) for i, e in enumerate(e2e_runs)]
        cpu_ratios = [
            np.mean(model_cpu[i : i + 2]) / (r["cpu_us"] + r["broker_cpu_us"])
            for i, r in enumerate(runs)
        ]
        middle = int(np.argsort(ratios)[len(ratios) // 2])
        e2e, ratio = e2e_runs[middle], ratios[middle]
        model_only = float(np.mean(model_runs[middle : middle + 2]))
        main_thread = bench_model_only(model, texts, in_thread=False)
        other_runs.append(bench_model_only(other_model, texts))
        forms = {form: model_only, other: float(np.mean(other_runs))}
        print(f"model only by form: {forms}", file=sys.stderr)
        print(f"model only: {model_runs} msgs/s; e2e: {e2e_runs} msgs/s", file=sys.stderr)
        with fresh_broker(data_dir / "broker-latency") as broker:
            latency = bench_latency(broker.bootstrap, model, data_dir, e2e / 2)
        print(f"latency: {latency}", file=sys.stderr)
        naive_runs: list[float] = []  # in a worker thread too, like the monitor
        with fresh_broker(data_dir / "broker-naive") as broker:
            worker = threading.Thread(
                target=lambda: naive_runs.append(bench_naive(broker.bootstrap, data_dir))
            )
            worker.start()
            worker.join()
        naive = naive_runs[0]
        print(f"naive: {naive:.1f} msgs/s", file=sys.stderr)
        load_after = os.getloadavg()
    import torch

    result = {
        "model_only_msgs_per_s": round(model_only, 1),
        "e2e_msgs_per_s": round(e2e, 1),
        "e2e_ratio": round(ratio, 3),
        "p50_latency_ms": latency["p50_latency_ms"],
        "p99_latency_ms": latency["p99_latency_ms"],
        "naive_msgs_per_s": round(naive, 1),
        "model_only_runs_msgs_per_s": [round(x, 1) for x in model_runs],
        "e2e_runs_msgs_per_s": [round(x, 1) for x in e2e_runs],
        "e2e_ratio_runs": [round(x, 3) for x in ratios],
        "e2e_mean_records_per_poll": [round(r["poll"], 1) for r in runs],
        "e2e_cpu_ratio": round(float(np.median(cpu_ratios)), 3),
        "e2e_cpu_ratio_runs": [round(float(x), 3) for x in cpu_ratios],
        "cpu_us_per_msg": {
            "model_only_runs": [round(x) for x in model_cpu],
            "e2e_process_runs": [round(r["cpu_us"]) for r in runs],
            "e2e_broker_runs": [round(r["broker_cpu_us"]) for r in runs],
        },
        "model_only_main_thread_msgs_per_s": round(main_thread, 1),
        "model_form": FORM_NAMES[form],
        "model_only_by_form_msgs_per_s": {FORM_NAMES[k]: round(v, 1) for k, v in forms.items()},
        "speedup_vs_naive": round(e2e / naive, 2),
        "latency": latency,
        "targets": {"e2e_ratio": ">= 0.9", "p99_latency_ms": "< 1000 at half max load"},
        "protocol": {
            "model": model.version,
            "model_form": f"{FORM_NAMES[form]} for model_only, e2e and latency (the form the "
            "monitor runs: VERTICALS_NEWS_MODEL_FORM, default auto = the card's real-data "
            "measurement decides); the other form model-only, before and after the rest",
            "broker": "noida-db 0.2.3 embedded, 127.0.0.1, topics with 3 partitions; a fresh "
            "broker for every e2e run, the latency run and the naive run",
            "client": "kafka-python 3.0.12",
            "messages_e2e": N,
            "messages_naive": NAIVE_N,
            "batch_size": BATCH,
            "model_batch_size": MODEL_BATCH,
            "texts": "demo feed titles (shared/news_monitor/demo_headlines.jsonl), unique ids",
            "model_only": "Predictor.predict_proba on consecutive calls of batch_size titles "
            "(the monitor's poll size; the Predictor sorts a call's texts by length and runs "
            "passes of model_batch_size, as in the monitor), in a worker thread like the "
            "consumer's; the same loop on the main thread is "
            "reported separately (in earlier runs under heavier load it was 4-5x slower than "
            "in a worker thread, so both sides are measured the same way)",
            "e2e": "the input topic is filled before the monitor starts (the load generator "
            "is not timed: this is the consumer's throughput); the monitor's first poll that "
            "returned items -> last enriched record flushed and committed; includes "
            "fetching, validation, dead-letter check, alert windows, SQLite writes, producing, "
            "commits and the broker's CPU",
            "latency": "input record timestamp -> output record timestamp, paced at half the "
            f"measured e2e rate for ~{LATENCY_SECONDS:.0f} s",
            "naive": "KafkaConsumer max_poll_records=1, transformers "
            "pipeline('text-classification') on all-MiniLM-L6-v2 with a 3-label head "
            "(same encoder cost) per message, one send per message; in a worker thread",
            "e2e_cpu_ratio": "model-only CPU seconds per message (this process, all threads) "
            "over the e2e's (this process, all threads: model, monitor, Kafka clients, "
            "SQLite, the timer's polling; plus the broker process); each e2e run against the "
            "mean of the two model-only runs around it, the median reported. Other work on the "
            "machine distorts it far less than the wall-time ratio, which is the target",
            "order": f"model_only and e2e alternating ({ROUNDS} e2e runs, each between two "
            "model_only runs), then latency, then naive, in one process; the reported e2e run is "
            "the one with the median ratio, model_only_msgs_per_s the mean of the two runs "
            "around it",
        },
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        },
        "notes": "2 CPU cores shared by the model, the monitor's Kafka client threads and the "
        "embedded broker (the input is produced before the timed window). Model-only throughput "
        "alone varies by several percent between back-to-back runs, hence the alternating runs "
        "and the median ratio. On a machine loaded by other work (see loadavg) the wall-time "
        "ratio is not the quiet machine's: the scheduler then gives the monitor's extra "
        "threads extra CPU share; e2e_cpu_ratio is the steadier figure there.",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
