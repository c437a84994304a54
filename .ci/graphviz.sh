#!/usr/bin/env bash
# Make sure Graphviz's `dot` program is installed (nas graph --format svg|png, the best
# architecture's picture in nas analyze, tests/test_drawing.py) and print its version.
# Installs Debian's package when it is missing (needs root); fails (exit status 1) otherwise.
set -euo pipefail
if ! command -v dot >/dev/null 2>&1; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y graphviz) >&2
fi
dot -V 2>&1
