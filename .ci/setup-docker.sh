#!/usr/bin/env bash
# Install and start a Docker engine for the end-to-end tests (idempotent).
#
#   bash .ci/setup-docker.sh        # as root
#
# Installs docker.io and debootstrap from Debian apt when missing, starts
# dockerd (vfs storage, no iptables, no bridge: containers run with
# --network none) unless an engine already answers, and waits for it.
# The daemon log goes to ${HIGHWATER_DOCKERD_LOG:-/var/log/highwater-dockerd.log}.
set -euo pipefail

log() { echo "setup-docker: $*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v unshare >/dev/null 2>&1 || need_pkgs+=(util-linux)
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  log "engine already running"
  exit 0
fi

logfile=${HIGHWATER_DOCKERD_LOG:-/var/log/highwater-dockerd.log}
log "starting dockerd (log: $logfile)"
# containerd is started by dockerd itself when it is not already running.
# Without TMPDIR: runc writes each `docker exec`'s process spec under it, and
# the tests start the engine themselves when none answers
# (test/helpers/docker.ts), with TMPDIR set to a scratch dir that their run
# removes at its end; every later `docker exec` then failed with "open
# <scratch>/runc-process...: no such file or directory". Unset, dockerd uses
# /var/lib/docker/tmp.
env -u TMPDIR nohup dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
  >"$logfile" 2>&1 </dev/null &
echo $! >/var/run/highwater-dockerd.pid

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    log "engine up: $(docker version --format '{{.Server.Version}}')"
    exit 0
  fi
  if ! kill -0 "$(cat /var/run/highwater-dockerd.pid)" 2>/dev/null; then
    log "dockerd exited; last log lines:"
    tail -n 30 "$logfile" >&2
    exit 1
  fi
  sleep 1
done
log "dockerd did not answer within 120 s; last log lines:"
tail -n 30 "$logfile" >&2
exit 1
