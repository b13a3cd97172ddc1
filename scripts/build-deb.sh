#!/usr/bin/env bash
# Build the Debian package of elasticrds: the binary in /usr/bin, the systemd unit, an
# environment file and the example config and policies in /etc/elasticrds/ as *.example (the
# service does not start on them: nothing is observed or managed until the operator writes a
# config, e.g. with `elasticrds init`), the man page and shell completions generated from the
# CLI's own definitions.
#
#   scripts/build-deb.sh                    build the release binary, then the package
#   scripts/build-deb.sh --binary PATH      package this binary instead (the tests use the
#                                           debug one: a release build takes minutes)
#   scripts/build-deb.sh --out DIR          where the .deb goes (default target/debian)
#
# Prints the path of the .deb. Needs dpkg-deb (Debian's dpkg) and gzip.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=""
OUT="target/debian"
while (($#)); do
    case "$1" in
        --binary) BIN="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "usage: scripts/build-deb.sh [--binary PATH] [--out DIR]" >&2; exit 2 ;;
    esac
done
if [[ -z "$BIN" ]]; then
    cargo build --release --locked --bin elasticrds >&2
    BIN="target/release/elasticrds"
fi
[[ -x "$BIN" ]] || { echo "build-deb: $BIN is not an executable" >&2; exit 2; }

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
ARCH="$(dpkg --print-architecture)"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
PKG="$STAGE/elasticrds_${VERSION}_${ARCH}"

install -D -m 0755 "$BIN" "$PKG/usr/bin/elasticrds"
# Debian ships stripped binaries (the symbols stay in the build tree).
if command -v strip >/dev/null 2>&1; then strip --strip-unneeded "$PKG/usr/bin/elasticrds"; fi
install -D -m 0644 scripts/package/elasticrds.service "$PKG/lib/systemd/system/elasticrds.service"
install -D -m 0640 scripts/package/environment "$PKG/etc/elasticrds/environment"
install -D -m 0644 elasticrds.yaml "$PKG/etc/elasticrds/elasticrds.yaml.example"
for p in policies/*.yaml; do
    install -D -m 0644 "$p" "$PKG/etc/elasticrds/policies/$(basename "$p").example"
done
install -d "$PKG/usr/share/man/man1"
"$BIN" generate man | gzip -9n > "$PKG/usr/share/man/man1/elasticrds.1.gz"
install -d "$PKG/usr/share/bash-completion/completions" \
    "$PKG/usr/share/zsh/vendor-completions" "$PKG/usr/share/fish/vendor_completions.d"
"$BIN" generate completions bash > "$PKG/usr/share/bash-completion/completions/elasticrds"
"$BIN" generate completions zsh > "$PKG/usr/share/zsh/vendor-completions/_elasticrds"
"$BIN" generate completions fish > "$PKG/usr/share/fish/vendor_completions.d/elasticrds.fish"
install -d "$PKG/usr/share/doc/elasticrds"
cat > "$PKG/usr/share/doc/elasticrds/copyright" <<'TEXT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: elasticrds

Files: *
Copyright: the elasticrds authors
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
 DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
TEXT

install -d "$PKG/DEBIAN"
SIZE_KB="$(du -sk "$PKG" | cut -f1)"
cat > "$PKG/DEBIAN/control" <<TEXT
Package: elasticrds
Version: $VERSION
Architecture: $ARCH
Maintainer: elasticrds maintainers <elasticrds@localhost>
Installed-Size: $SIZE_KB
Depends: libc6
Section: admin
Priority: optional
Description: autoscaler for Amazon RDS read replicas
 Keeps the right number of read replicas of an RDS master (MySQL, MariaDB,
 PostgreSQL) for the load, from an ordered list you configure; never touches
 anything else. A service (systemd unit elasticrds.service) plus an operator CLI.
TEXT
( cd "$PKG" && find etc -type f | sed 's|^|/|' | sort ) > "$PKG/DEBIAN/conffiles"
cat > "$PKG/DEBIAN/postinst" <<'TEXT'
#!/bin/sh
set -e
# The unit is installed, not enabled or started: `systemctl enable --now elasticrds` once
# /etc/elasticrds is configured.
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
TEXT
cat > "$PKG/DEBIAN/prerm" <<'TEXT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop elasticrds.service >/dev/null 2>&1 || true
fi
exit 0
TEXT
cat > "$PKG/DEBIAN/postrm" <<'TEXT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
TEXT
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/prerm" "$PKG/DEBIAN/postrm"

mkdir -p "$OUT"
dpkg-deb --root-owner-group --build "$PKG" "$OUT/" >&2
echo "$OUT/elasticrds_${VERSION}_${ARCH}.deb"
