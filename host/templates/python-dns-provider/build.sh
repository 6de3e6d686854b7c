#!/bin/sh
# Builds dist/{{name}}.wasm: the Python code in src/ and CPython, as one component targeting
# Porthole's `dns-provider` world. Makes .venv with the pinned componentize-py the first time.
set -eu
cd "$(dirname "$0")"
if [ ! -x .venv/bin/componentize-py ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --requirement requirements.txt
fi
mkdir -p dist
.venv/bin/componentize-py --wit-path wit --world dns-provider componentize --python-path src app --output dist/{{name}}.wasm
echo "built dist/{{name}}.wasm"
