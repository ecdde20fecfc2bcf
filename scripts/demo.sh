#!/usr/bin/env bash
# Runs `imc-server demo` after installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The demo's desk agent runs as its own process, as at a real desk: the
# imc-agent program that imc-server demo finds beside itself.
cargo build --release --locked -p imc-agent --bin imc-agent
exec cargo run --release --locked --bin imc-server -- demo "$@"
