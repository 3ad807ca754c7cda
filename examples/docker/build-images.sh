#!/usr/bin/env bash
# Build the highwater images from local bases (no registry needed).
#
#   bash examples/docker/build-images.sh [bundle|bundle-full|sidecar|job|job-slim|job-trixie ...]
#
# With no argument builds everything. Images:
#   highwater-bundle           repo Dockerfile, target bundle (init-only /opt/highwater)
#   highwater-bundle-full      repo Dockerfile, target bundle-full (+ Node and the CLI)
#   highwater:latest           repo Dockerfile, target sidecar (`highwater watch`)
#   highwater-demo-job         examples/docker, bookworm base + bundle-full
#   highwater-demo-job-slim    examples/docker, bookworm base + init-only bundle
#   highwater-demo-job-trixie  examples/docker, trixie base (Python 3.13) + bundle-full
# Missing base images are made with .ci/make-bases.sh. All output goes to stderr.
set -euo pipefail
exec 3>&1 1>&2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export DOCKER_BUILDKIT=0

targets=("$@")
((${#targets[@]})) || targets=(bundle bundle-full sidecar job job-slim job-trixie)

need_base() {
  docker image inspect "$1" >/dev/null 2>&1 || bash "$root/.ci/make-bases.sh" "$1"
}

repo_build() { # target tag
  need_base highwater-build:bookworm
  need_base highwater-base:bookworm
  echo "build-images: $2 (target $1)"
  docker build -q --target "$1" -t "$2" \
    --build-arg BUILD_BASE=highwater-build:bookworm \
    --build-arg RUNTIME_BASE=highwater-base:bookworm "$root" >/dev/null
}

job_build() { # tag base bundle-image
  need_base "$2"
  # Always (re)build the bundle: the layer cache makes it cheap when nothing
  # changed, and a stale bundle would test yesterday's shim.
  build_one "${3#highwater-}"
  echo "build-images: $1 ($2 + $3)"
  docker build -q -t "$1" --build-arg BASE="$2" --build-arg HIGHWATER_BUNDLE="$3" "$here" >/dev/null
}

built=" "
build_one() {
  [[ $built == *" $1 "* ]] && return 0
  case $1 in
    bundle) repo_build bundle highwater-bundle ;;
    bundle-full) repo_build bundle-full highwater-bundle-full ;;
    sidecar) repo_build sidecar highwater:latest ;;
    job) job_build highwater-demo-job highwater-base:bookworm highwater-bundle-full ;;
    job-slim) job_build highwater-demo-job-slim highwater-base:bookworm highwater-bundle ;;
    job-trixie) job_build highwater-demo-job-trixie highwater-base:trixie highwater-bundle-full ;;
    *) echo "build-images: unknown target $1" >&2; return 2 ;;
  esac
  built+="$1 "
}

for t in "${targets[@]}"; do build_one "$t"; done
