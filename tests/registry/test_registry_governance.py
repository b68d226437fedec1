"""``python -m app.schemas`` and its functions, against a live registry and a temp schema dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import catalog
from app.schemas import (
    CheckStatus,
    GovernanceError,
    RegistryUnreachable,
    catalog_sources,
    check_all,
    list_all,
    register_all,
)

from .conftest import REPO_ROOT

TELEMETRY = "telemetry/TelemetryEvent.avsc"
ERRORS = "derived/TelemetryErrors.avsc"
METRICS = "lens/ModelMetric.avsc"


def write(schema_dir: Path, relative: str, schema: dict | str) -> Path:
    path = schema_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema if isinstance(schema, str) else json.dumps(schema, indent=2))
    return path


def telemetry(*extra: dict) -> dict:
    return {
        "type": "record",
        "name": "TelemetryEvent",
        "namespace": "com.acme.telemetry",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "watch_duration_seconds", "type": "int"},
            *extra,
        ],
    }


ERRORS_SCHEMA = {
    "type": "record",
    "name": "TelemetryErrors",
    "namespace": "com.streampulse.derived",
    "fields": [{"name": "error_count", "type": "long"}],
}


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    write(root, TELEMETRY, telemetry())
    write(root, ERRORS, ERRORS_SCHEMA)
    return root


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.schemas", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_sources_follow_the_catalog(schema_dir):
    sources = catalog_sources(schema_dir)
    expected = [*catalog.SOURCE_TOPICS, *catalog.DERIVED_TOPICS]
    assert [s.topic for s in sources] == expected
    assert [s.subject for s in sources] == [f"{t}-value" for t in expected]
    assert sources[0].path == schema_dir / catalog.SOURCE_TOPICS[expected[0]].schema_file
    assert catalog_sources()[0].path.parent.parent == catalog.SCHEMA_DIR
    with pytest.raises(GovernanceError, match="not catalog topics: nope"):
        catalog_sources(schema_dir, topics=["nope"])


def test_register_all_registers_each_schema_idempotently(registry, schema_dir):
    with pytest.raises(GovernanceError, match="schema files missing"):
        register_all(registry.url, schema_dir)
    first = register_all(registry.url, schema_dir, skip_missing=True)
    assert [(r.subject, r.schema_id, r.version) for r in first] == [
        ("acme-telemetry-value", 1, 1),
        ("agg.telemetry.errors-value", 2, 1),
    ]
    assert register_all(registry.url, schema_dir, skip_missing=True) == first
    only = register_all(registry.url, schema_dir, topics=["agg.telemetry.errors"])
    assert [r.subject for r in only] == ["agg.telemetry.errors-value"]

    write(
        schema_dir,
        TELEMETRY,
        telemetry({"name": "city", "type": ["null", "string"], "default": None}),
    )
    evolved = register_all(registry.url, schema_dir, skip_missing=True)
    assert (evolved[0].schema_id, evolved[0].version) == (3, 2)

    write(schema_dir, TELEMETRY, telemetry({"name": "city", "type": "int"}))
    with pytest.raises(GovernanceError, match="acme-telemetry-value: HTTP 409"):
        register_all(registry.url, schema_dir, skip_missing=True)


def test_check_all_passes_compatible_and_new_and_fails_incompatible(registry, schema_dir):
    register_all(registry.url, schema_dir, skip_missing=True)

    results = {r.subject: r for r in check_all(registry.url, schema_dir, skip_missing=True)}
    assert results["acme-telemetry-value"].status is CheckStatus.UNCHANGED
    assert results["orders.raw-value"].status is CheckStatus.SKIPPED
    assert all(r.ok for r in results.values())

    # A compatible edit plus a schema for a subject not registered yet.
    write(
        schema_dir,
        TELEMETRY,
        telemetry({"name": "city", "type": ["null", "string"], "default": None}),
    )
    write(
        schema_dir,
        METRICS,
        {"type": "record", "name": "ModelMetric", "fields": [{"name": "m", "type": "double"}]},
    )
    results = {r.subject: r for r in check_all(registry.url, schema_dir, skip_missing=True)}
    assert results["acme-telemetry-value"].status is CheckStatus.COMPATIBLE
    assert "BACKWARD" in results["acme-telemetry-value"].detail
    assert results["model-metrics-value"].status is CheckStatus.NEW
    assert all(r.ok for r in results.values())
    # Checking registered nothing.
    assert [len(listing.versions) for listing in list_all(registry.url)] == [1, 1]

    # An incompatible edit: a field changes type.
    bad = telemetry()
    bad["fields"][1] = {"name": "watch_duration_seconds", "type": "string"}
    write(schema_dir, TELEMETRY, bad)
    results = {r.subject: r for r in check_all(registry.url, schema_dir, skip_missing=True)}
    failed = results["acme-telemetry-value"]
    assert failed.status is CheckStatus.INCOMPATIBLE and not failed.ok
    assert any("TYPE_MISMATCH" in m for m in failed.messages)

    # Missing files fail unless skipped; unparseable ones fail.
    assert CheckStatus.MISSING in {r.status for r in check_all(registry.url, schema_dir)}
    write(schema_dir, ERRORS, "{not json")
    results = {r.subject: r for r in check_all(registry.url, schema_dir, skip_missing=True)}
    assert results["agg.telemetry.errors-value"].status is CheckStatus.INVALID


def test_check_cli_exit_codes(registry, schema_dir):
    assert (
        cli(
            "register", "--url", registry.url, "--schema-dir", str(schema_dir), "--skip-missing"
        ).returncode
        == 0
    )

    compatible = telemetry({"name": "city", "type": ["null", "string"], "default": None})
    write(schema_dir, TELEMETRY, compatible)
    ok = cli("check", "--url", registry.url, "--schema-dir", str(schema_dir), "--skip-missing")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "acme-telemetry-value [compatible]" in ok.stdout

    incompatible = telemetry({"name": "city", "type": "string"})  # new field without default
    write(schema_dir, TELEMETRY, incompatible)
    failed = cli("check", "--url", registry.url, "--schema-dir", str(schema_dir), "--skip-missing")
    assert failed.returncode == 1
    assert "FAIL acme-telemetry-value [incompatible]" in failed.stdout
    assert "'city'" in failed.stdout and "no default value" in failed.stdout
    assert "acme-telemetry-value (incompatible)" in failed.stderr

    missing = cli("check", "--url", registry.url, "--schema-dir", str(schema_dir))
    assert missing.returncode == 1 and "[missing]" in missing.stdout


def test_register_and_list_cli_print_ids_and_versions(registry, schema_dir):
    registered = cli(
        "register", "--url", registry.url, "--schema-dir", str(schema_dir), "--skip-missing"
    )
    assert registered.returncode == 0, registered.stderr
    assert "acme-telemetry-value: id=1 version=1" in registered.stdout
    assert "agg.telemetry.errors-value: id=2 version=1" in registered.stdout
    missing = cli("register", "--url", registry.url, "--schema-dir", str(schema_dir))
    assert missing.returncode == 1 and "schema files missing" in missing.stderr

    listed = cli("list", "--url", registry.url)
    assert listed.returncode == 0
    assert "acme-telemetry-value [BACKWARD]: v1=id 1" in listed.stdout


def test_url_comes_from_the_environment(registry, schema_dir, monkeypatch):
    import os

    env = {**os.environ, "SCHEMA_REGISTRY_URL": registry.url}
    listed = cli("list", env=env)
    assert listed.returncode == 0, listed.stderr
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", registry.url)
    assert list_all() == []


def test_unreachable_registry(schema_dir, unused_port_url):
    with pytest.raises(RegistryUnreachable):
        check_all(unused_port_url, schema_dir, skip_missing=True, timeout=2)
    answer = cli(
        "check", "--url", unused_port_url, "--schema-dir", str(schema_dir), "--skip-missing"
    )
    assert answer.returncode == 2 and "cannot reach the schema registry" in answer.stderr


def test_the_repository_schemas_register_cleanly(registry):
    """Every .avsc the catalog names that exists today is a valid Avro schema for the registry."""
    present = [s for s in catalog_sources() if s.path.is_file()]
    registered = register_all(registry.url, skip_missing=True)
    assert [r.subject for r in registered] == [s.subject for s in present]
    assert all(r.version == 1 for r in registered)
    assert all(r.ok for r in check_all(registry.url, skip_missing=True))


@pytest.fixture
def unused_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
