#!/usr/bin/env bash
# Make the local base images the Docker tests and examples build on
# (there is no image registry here). Idempotent: an image whose tag exists
# is kept; pass --force to rebuild.
#
#   bash .ci/make-bases.sh [--force] [TAG...]
#
# Tags (all made when none is given):
#   highwater-base:bookworm   Debian 12, python3 (3.11) + numpy
#   highwater-base:trixie     Debian 13, python3 (3.13) + numpy
#   highwater-build:bookworm  Debian 12, gcc, make, libc6-dev (Dockerfile builder stage)
#
# Uses debootstrap against the apt mirror this machine is configured with
# (override with HIGHWATER_DEBIAN_MIRROR) and imports the tree with
# `docker import`. Needs root and a running engine (.ci/setup-docker.sh).
set -euo pipefail

log() { echo "make-bases: $*" >&2; }

force=0
tags=()
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    *) tags+=("$a") ;;
  esac
done
((${#tags[@]})) || tags=(highwater-base:bookworm highwater-base:trixie highwater-build:bookworm)

mirror() {
  if [[ -n ${HIGHWATER_DEBIAN_MIRROR:-} ]]; then echo "$HIGHWATER_DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -hoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -oE 'https?://[^[:space:]]+' | grep -v -- '-security' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

command -v debootstrap >/dev/null 2>&1 || {
  log "debootstrap missing: run .ci/setup-docker.sh first"; exit 1; }
docker info >/dev/null 2>&1 || { log "no Docker engine: run .ci/setup-docker.sh first"; exit 1; }

# trixie needs a debootstrap that knows it; older ones lack the script.
suite_script() {
  local s=$1
  if [[ -e /usr/share/debootstrap/scripts/$s ]]; then echo "$s"; else echo sid; fi
}

make_one() {
  local tag=$1 suite include
  case $tag in
    highwater-base:bookworm) suite=bookworm; include=python3,python3-numpy ;;
    highwater-base:trixie) suite=trixie; include=python3,python3-numpy ;;
    highwater-build:bookworm) suite=bookworm; include=gcc,make,libc6-dev ;;
    *) log "unknown tag $tag"; return 1 ;;
  esac
  if ((!force)) && docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag exists, kept"
    return 0
  fi
  local dir
  dir=$(mktemp -d /var/tmp/highwater-base.XXXXXX)
  trap 'rm -rf "$dir"' RETURN
  local m
  m=$(mirror)
  log "debootstrap $suite ($include) from $m"
  # --no-check-gpg only for a suite this debootstrap has no keyring for.
  local extra=()
  [[ $(suite_script "$suite") == "$suite" ]] || extra+=(--no-check-gpg)
  debootstrap --variant=minbase --include="$include" "${extra[@]}" \
    "$suite" "$dir" "$m" /usr/share/debootstrap/scripts/"$(suite_script "$suite")" \
    >"$dir.log" 2>&1 || { log "debootstrap failed:"; tail -n 30 "$dir.log" >&2; rm -f "$dir.log"; return 1; }
  rm -f "$dir.log"
  # Slim the tree: apt lists and caches, docs, man pages.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  # mktemp made the root 0700; the image's / must be traversable by non-root users.
  chmod 0755 "$dir"
  log "importing $tag"
  tar -C "$dir" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' - "$tag" >/dev/null
  log "$tag: $(docker image inspect --format '{{.Size}}' "$tag") bytes"
}

for t in "${tags[@]}"; do make_one "$t"; done
