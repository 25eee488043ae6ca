"""The news monitor's one settings object (environment prefix ``VERTICALS_NEWS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from verticals.serving import settings as serving


def shared_dir() -> Path:
    """shared/news_monitor of the checkout this package is installed from."""
    return serving.shared_dir("news_monitor")


class NewsSettings(serving.ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERTICALS_NEWS_", frozen=True, extra="ignore")

    port: int = 8030
    data_dir: Path = Path("var/news_monitor")

    # broker: empty bootstrap_servers means the embedded broker on 127.0.0.1:broker_port
    bootstrap_servers: str = ""
    broker_port: int = 19092
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    input_topic: str = "news.raw"
    output_topic: str = "news.enriched"
    dlq_topic: str = "news.dlq"
    alerts_topic: str = "news.alerts"
    partitions: int = Field(3, ge=1)
    group_id: str = "news-monitor"
    group_instance_id: str | None = None
    """Static membership (KIP-345): a restarted process with the same id takes its place and
    partitions at once, instead of waiting for the group to drop the dead member."""

    max_batch: int = Field(256, ge=1, le=10_000)
    """Records per poll: one classify call, one database transaction, one produce flush and one
    offset commit per poll, so the per-batch costs are shared by up to this many records."""
    model_batch: int = Field(64, ge=1, le=1024)
    """Texts per forward pass; a poll's texts are sorted by length first, so the passes of a
    larger poll pad less."""
    poll_timeout_ms: int = Field(200, ge=1)
    session_timeout_ms: int = Field(10_000, ge=6000)
    heartbeat_interval_ms: int = Field(3000, ge=100)
    max_poll_interval_ms: int = Field(300_000, ge=10_000)
    request_timeout_ms: int = Field(30_000, ge=1000)
    lag_interval_s: float = Field(5.0, gt=0)
    max_event_skew_s: float = Field(300.0, ge=0)
    """Items published more than this many seconds after their receipt are dead-lettered
    (``future_timestamp``): they would move the watermark past every real window."""
    dlq_max_bytes: int = Field(1_000_000, ge=16_384)
    """A dead letter (value, key and headers) larger than this is sent truncated, with headers
    ``truncated`` and ``original_size``: keep it under the producer's 1 MiB request limit."""

    model_task: str = Field("news-sentiment-topic", min_length=1)
    """Registry task of the sentiment + topic classifier the monitor runs."""
    model_dir: Path = Field(default_factory=lambda: shared_dir() / "model")
    """Shipped default model, imported into the registry on start when the task has none."""
    model_form: Literal["auto", "int8", "fp32"] = "auto"
    """The form the monitor runs: the core's int8 ONNX, torch fp32, or ``auto``: int8 when the
    model card's real-data evaluation (``real_eval``) records < 1 point macro-F1 loss to fp32."""
    rules_path: Path = Field(default_factory=lambda: shared_dir() / "alert_rules.yaml")
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_max_attempts: int = Field(5, ge=1)
    webhook_backoff_s: float = Field(0.5, gt=0)
    webhook_timeout_s: float = Field(5.0, gt=0)

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    def kafka_security(self) -> dict[str, object]:
        """Connection options every client gets (SASL/SSL for real clusters)."""
        opts: dict[str, object] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value:
                opts[name] = str(value)
        return opts


def get_settings(**overrides: object) -> NewsSettings:
    return serving.load_settings(NewsSettings, **overrides)
