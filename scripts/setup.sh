#!/usr/bin/env bash
# Installs what building and testing IMC needs on a fresh Debian machine.
# Safe to run again: it only installs what is missing.
set -euo pipefail

need=()
# CJK glyphs for cover sheets (Chinese document fields).
fc-list 2>/dev/null | grep -qi "WenQuanYi Micro Hei" || need+=(fonts-wqy-microhei)
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
# The agent builds zxing-cpp (its DataMatrix and PDF417 reader) from C++ sources.
command -v c++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
# The sign-off desk's browser tests: Debian's Chromium driven by playwright-core.
[[ -x /usr/bin/chromium ]] || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
# `systemd-analyze verify` checks the agent's unit in the installer tests.
command -v systemd-analyze >/dev/null || need+=(systemd)
# The archive tests check document.xml against its XSD.
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v python3 >/dev/null || need+=(python3 python3-venv)

if ((${#need[@]})); then
    if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
    echo "setup: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup first" >&2; exit 1; }

# playwright-core for tests/browser, pinned by its package-lock.json; it uses
# the system Chromium and downloads no browser of its own.
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if [[ ! -f "$browser_dir/node_modules/playwright-core/package.json" ]] ||
    ! cmp -s "$browser_dir/package-lock.json" "$browser_dir/node_modules/.imc-installed-lock" 2>/dev/null; then
    echo "setup: installing tests/browser npm packages"
    (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent &&
        cp package-lock.json node_modules/.imc-installed-lock)
fi

# The archive tests validate every bag with the Library of Congress `bagit`
# tool, pinned, in a virtual environment outside the clone.
bagit_venv="${IMC_TOOLS_DIR:-$HOME/.cache/imc-tools}/bagit-venv"
if [[ ! -x "$bagit_venv/bin/bagit.py" ]]; then
    echo "setup: installing the bagit validator into $bagit_venv"
    python3 -m venv "$bagit_venv"
    "$bagit_venv/bin/pip" install --quiet --disable-pip-version-check bagit==1.9.0
fi
