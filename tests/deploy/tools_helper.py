"""Helpers that run inside .venv-tools (PyYAML, jsonschema, kubernetes-validate live there).

The project venv has no YAML parser, so tests/deploy calls this script with the tools venv's
python and reads JSON back:

    python tools_helper.py yaml2json FILE...
        {"FILE": [document, ...], ...}: every non-empty YAML document of every file.
    python tools_helper.py crd SCHEMA KIND FILE... [--k8s-version 1.37.0]
        Validate every document of kind KIND against the JSON schema SCHEMA (draft 2020-12),
        whose references to https://kubernetes.io/api/_definitions.json resolve to the strict
        definitions that kubernetes-validate bundles for that Kubernetes version. Prints
        {"validated": n, "errors": [...]} and exits 1 on any error or when nothing matched.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import importlib_resources
import jsonschema
import yaml
from referencing import Registry, Resource

K8S_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"


def load_yaml_documents(path: str) -> list[Any]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def k8s_definitions(version: str) -> dict[str, Any]:
    folder = importlib_resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema", f"v{version}-local-strict"
    )
    return json.loads(folder.joinpath("_definitions.json").read_text(encoding="utf-8"))


def validate_kind(schema_path: str, kind: str, files: list[str], version: str) -> dict[str, Any]:
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    definitions = k8s_definitions(version)
    registry: Registry = Registry().with_resources(
        [
            (K8S_DEFINITIONS_URI, Resource.from_contents(definitions)),
            (schema["$id"], Resource.from_contents(schema)),
        ]
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    validated = 0
    errors: list[str] = []
    for path in files:
        for doc in load_yaml_documents(path):
            if not isinstance(doc, dict) or doc.get("kind") != kind:
                continue
            validated += 1
            name = doc.get("metadata", {}).get("name", "?")
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                where = ".".join(str(part) for part in error.path) or "(root)"
                errors.append(f"{path}: {kind}/{name}: {where}: {error.message}")
    return {"validated": validated, "errors": errors}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools_helper.py")
    commands = parser.add_subparsers(dest="command", required=True)
    to_json = commands.add_parser("yaml2json")
    to_json.add_argument("files", nargs="+")
    crd = commands.add_parser("crd")
    crd.add_argument("schema")
    crd.add_argument("kind")
    crd.add_argument("files", nargs="+")
    crd.add_argument("--k8s-version", default="1.37.0")
    args = parser.parse_args(argv)

    if args.command == "yaml2json":
        json.dump({path: load_yaml_documents(path) for path in args.files}, sys.stdout)
        return 0
    result = validate_kind(args.schema, args.kind, args.files, args.k8s_version)
    json.dump(result, sys.stdout, indent=2)
    return 0 if result["validated"] and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
