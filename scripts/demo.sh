#!/usr/bin/env bash
# Runs `imc-server demo` after installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --locked --bin imc-server -- demo "$@"
