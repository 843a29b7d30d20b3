#!/usr/bin/env bash
# Build the JupyterLab extension into ../gitrtc/labextension/ (the wheel ships it as
# share/jupyter/labextensions/gitrtc). Uses @jupyterlab/builder against the installed
# JupyterLab's own core package list (its staging folder), so no network is needed:
# JupyterLab 4.6's `jupyter labextension build` would fetch @jupyterlab/core-meta.
# $PYTHON: a Python with JupyterLab installed (default: python3). --dev: a development build.
set -euo pipefail
cd "$(dirname "$0")"
core=$("${PYTHON:-python3}" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')
npx tsc
mode=()
[ "${1:-}" = "--dev" ] && mode=(--development)
exec node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" "${mode[@]}" .
