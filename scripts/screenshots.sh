#!/usr/bin/env bash
# Refreshes docs/screenshots/ from the browser tests (the sign-off desk, the
# scan desk's console), which
# drives headless Chromium through the real server and agent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins
IMC_SCREENSHOTS="$PWD/docs/screenshots" cargo test -p imc-tests --test e2e sign_off_desk_in_a_real_browser
IMC_SCREENSHOTS="$PWD/docs/screenshots" cargo test -p imc-tests --test e2e the_desk_console_in_a_real_browser
