#!/usr/bin/env bash
# The OOM demo: a NumPy job that outgrows a 400 MiB container, run under
# highwater (single-container mode: init + watcher in the job's container).
#
#   bash examples/docker/run-oom-demo.sh [REPORTS_DIR]
#
# REPORTS_DIR (default ./highwater-demo-reports) is mounted at /reports.
# Builds what it needs from local bases (making them if absent). Everything
# goes to stderr except the last two lines on stdout, which other code parses:
#   exit code: N
#   report: PATH        (the new report directory on the host, or `none`)
# Environment: HIGHWATER_DEMO_IMAGE (default highwater-demo-job),
# HIGHWATER_DEMO_MEMORY (default 400m), HIGHWATER_DEMO_SKIP_BUILD=1.
set -uo pipefail
exec 3>&1 1>&2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${HIGHWATER_DEMO_IMAGE:-highwater-demo-job}
memory=${HIGHWATER_DEMO_MEMORY:-400m}
reports=${1:-$PWD/highwater-demo-reports}
mkdir -p "$reports"
reports=$(cd "$reports" && pwd)

if [[ ${HIGHWATER_DEMO_SKIP_BUILD:-0} != 1 ]]; then
  bash "$here/build-images.sh" job || { echo "exit code: 125" >&3; echo "report: none" >&3; exit 1; }
fi

before=$(ls -1 "$reports" 2>/dev/null | sort)
docker run --rm --network none --memory "$memory" --memory-swap "$memory" \
  -e HIGHWATER_WATCH=1 -v "$reports:/reports" "$image"
code=$?

report=none
for d in $(ls -1t "$reports" 2>/dev/null); do
  [[ -d $reports/$d ]] || continue
  grep -qxF "$d" <<<"$before" && continue
  report=$reports/$d
  break
done
echo "exit code: $code" >&3
echo "report: $report" >&3
