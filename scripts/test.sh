#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, then every test, including
# the end-to-end ones that start real imc-server and imc-agent processes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# PostgreSQL and Garage for the scale-out tests; they read the env file it writes.
scripts/services.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests run the real executables: build them first.
cargo build --workspace --bins --locked
RUST_BACKTRACE=0 cargo test --workspace --locked
