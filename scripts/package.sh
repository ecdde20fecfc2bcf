#!/usr/bin/env bash
# Builds the Debian packages of the agent (imc-agent + imc-installer) and the
# server from the `dist` profile (release code, stripped, LTO), each with one
# Depends line, then checks them: control data and file lists, lintian (no
# errors), the agent package's size budget, a dry-run install on this machine,
# and the agent package unpacked into a throwaway root whose programs run and
# whose unit `systemd-analyze verify` accepts. Packages land in target/debian/
# (under CARGO_TARGET_DIR if set). Not part of the test suite (the LTO build
# takes a while); see docs/INSTALL.md.
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

# One Depends line per package. cargo-deb's `$auto` asks dpkg-shlibdeps about
# each binary on its own and joins the answers, so a library two binaries need
# at different minimum versions is named twice (imc-agent needs libc6 (>= 2.35),
# imc-installer libc6 (>= 2.34)). As dh_shlibdeps does, ask once about all the
# package's binaries: each library once, at the highest version any of them
# needs (libgcc-s1 left out, as cargo-deb does: libc6 depends on it).
one_depends_line() {
    local deb=$1 name work root f bins=() depends
    name=$(dpkg-deb -f "$deb" Package)
    work=$(mktemp -d)
    root="$work/debian/$name"
    mkdir "$work/debian"
    dpkg-deb -R "$deb" "$root"
    : > "$work/debian/control"
    for f in "$root"/usr/bin/*; do
        if [[ $(head -c 4 "$f") == $'\x7fELF' ]]; then bins+=("${f#"$work/"}"); fi
    done
    depends=$(cd "$work" && dpkg-shlibdeps -xlibgcc-s1 -O "${bins[@]}" | sed -n 's/^shlibs:Depends=//p')
    if [[ -z $depends ]]; then
        echo "package: dpkg-shlibdeps found no dependencies for $deb" >&2
        exit 1
    fi
    if [[ $(dpkg-deb -f "$deb" Depends) != "$depends" ]]; then
        grep -q '^Depends: ' "$root/DEBIAN/control" ||
            { echo "package: $deb has no Depends field to replace" >&2; exit 1; }
        sed -i "s/^Depends: .*/Depends: $depends/" "$root/DEBIAN/control"
        dpkg-deb --root-owner-group -Zxz -b "$root" "$deb" >/dev/null
    fi
    rm -rf "$work"
}
one_depends_line "$agent_deb"
one_depends_line "$server_deb"

for deb in "$agent_deb" "$server_deb"; do
    echo "== $deb"
    dpkg-deb --info "$deb"
    dpkg-deb --contents "$deb"
    # Errors fail; the warnings left (no manual pages, INSTALL.md in the docs,
    # an initial upload closing no Debian bug) are accepted.
    lintian --fail-on error "$deb"
done

# What a desk downloads and installs stays small: the agent package under 40 MB
# installed (Installed-Size is in KiB).
agent_kib=$(dpkg-deb -f "$agent_deb" Installed-Size)
if ((agent_kib * 1024 >= 40000000)); then
    echo "package: imc-agent installs $agent_kib KiB, over its 40 MB budget" >&2
    exit 1
fi

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
rm "$root/imc-agent.service"
echo "imc-agent unpacked: $(du -sk "$root" | cut -f1) KiB"
for deb in "$agent_deb" "$server_deb"; do
    echo "$deb: $(du -k "$deb" | cut -f1) KiB, installs $(dpkg-deb -f "$deb" Installed-Size) KiB"
done
