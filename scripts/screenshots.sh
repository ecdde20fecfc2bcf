#!/usr/bin/env bash
# Refreshes docs/screenshots/ from the sign-off desk's browser test, which
# drives headless Chromium through the real server and agent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins
IMC_SCREENSHOTS="$PWD/docs/screenshots" cargo test -p imc-tests --test e2e sign_off_desk_in_a_real_browser
