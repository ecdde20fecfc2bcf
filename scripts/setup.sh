#!/usr/bin/env bash
# Installs what building and testing IMC needs on a fresh Debian machine.
# Safe to run again: it only installs what is missing.
set -euo pipefail

need=()
# CJK glyphs for cover sheets (Chinese document fields).
fc-list 2>/dev/null | grep -qi "WenQuanYi Micro Hei" || need+=(fonts-wqy-microhei)
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
# `systemd-analyze verify` checks the agent's unit in the installer tests.
command -v systemd-analyze >/dev/null || need+=(systemd)

if ((${#need[@]})); then
    if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
    echo "setup: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup first" >&2; exit 1; }
