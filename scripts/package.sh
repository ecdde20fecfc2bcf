#!/usr/bin/env bash
# Builds the Debian packages of the agent (imc-agent + imc-installer) and the
# server from the `dist` profile (release code, stripped, LTO), then checks them: control data and file lists, lintian,
# a dry-run install on this machine, and the agent package unpacked into a
# throwaway root whose programs run and whose unit `systemd-analyze verify`
# accepts. Packages land in target/debian/. Not part of the test suite (a
# release build takes a while); see docs/INSTALL.md.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${IMC_TOOLS:-$HOME/.cache/imc-tools}"
cargo_deb="$tools/cargo-deb/bin/cargo-deb"
# Installed once, outside the clone, at a pinned version.
if [[ ! -x "$cargo_deb" ]]; then
    cargo install cargo-deb --version 3.8.0 --locked --root "$tools/cargo-deb"
fi
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
# cargo-deb and the Depends line below read the binaries' libraries with it.
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
if ((${#need[@]})); then
    if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Only the three programs the packages ship (not imc-loadgen): each is one
# whole-program LTO link. The assets' `target/release/` in the Cargo.toml
# metadata is cargo-deb's name for the profile's output, here target/dist/.
cargo build --profile dist --locked -p imc-agent -p imc-installer -p imc-server \
    --bin imc-agent --bin imc-installer --bin imc-server
agent_deb=$("$cargo_deb" -p imc-agent --profile dist --no-build | tail -n 1)
server_deb=$("$cargo_deb" -p imc-server --profile dist --no-build | tail -n 1)

for deb in "$agent_deb" "$server_deb"; do
    echo "== $deb"
    dpkg-deb --info "$deb"
    dpkg-deb --contents "$deb"
    # Errors fail; the warnings left (no manual pages, INSTALL.md in the docs,
    # an initial upload closing no Debian bug) are accepted.
    lintian --fail-on error "$deb"
done

# Would install here: dependencies met, no file conflicts (no scripts run).
if [[ $(id -u) -eq 0 ]]; then
    dpkg --dry-run -i "$agent_deb" "$server_deb"
fi

# The agent package unpacked into a throwaway root.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$agent_deb" "$root"
"$root/usr/bin/imc-agent" --version
"$root/usr/bin/imc-installer" --help >/dev/null
unit="$root/lib/systemd/system/imc-agent.service"
[[ -f "$unit" ]] || unit="$root/usr/lib/systemd/system/imc-agent.service"
sed "s#/usr/bin/imc-agent#$root/usr/bin/imc-agent#" "$unit" > "$root/imc-agent.service"
systemd-analyze verify "$root/imc-agent.service"
echo "packages: $agent_deb $server_deb"
