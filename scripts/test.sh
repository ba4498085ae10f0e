#!/usr/bin/env bash
# `make test`: install what the tests need, run every test with pytest, and end
# with pytest's summary line. Extra arguments go to pytest.
#
# The lab cloud (lab/labctl up) starts in the background while lint, unit and
# molecule tests run; the lab tests wait for it (`labctl wait`). It is torn down
# at the end whatever happened (trap), its output kept in build/logs/lab.log.
# A lab that was already up before is left up. MONOSCAPE_TEST_LAB=0 skips
# starting it (the lab tests then fail: lab not up).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p build/logs
scripts/bootstrap.sh
scripts/test-hosts.sh
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HOME/.cache/monoscape/containers.conf}
export PATH=$ROOT/.venv/bin:$PATH

LAB_LOG=$ROOT/build/logs/lab.log
lab_pid=
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$lab_pid" ]; then
    kill "$lab_pid" 2>/dev/null && echo "test.sh: interrupted lab/labctl up" >>"$LAB_LOG"
    wait "$lab_pid" 2>/dev/null || true
    if ! lab/labctl down --purge >>"$LAB_LOG" 2>&1; then
      echo "test.sh: lab down failed, see $LAB_LOG"
      [ -s build/logs/pytest.log ] && tail -n 1 build/logs/pytest.log  # the summary stays last
    fi
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
if [ "${MONOSCAPE_TEST_LAB:-1}" != 0 ] && ! lab/labctl status >/dev/null 2>&1; then
  { echo "== $(date '+%F %T') lab/labctl up (background, started by scripts/test.sh)"; } >"$LAB_LOG"
  lab/labctl up >>"$LAB_LOG" 2>&1 &
  lab_pid=$!
fi

make --no-print-directory packages
set +e
# two workers: the lab tests on one, lint, unit and molecule on the other
# (tests/conftest.py); MONOSCAPE_TEST_WORKERS=0 runs everything in this process
workers=${MONOSCAPE_TEST_WORKERS:-2}
if [ "$workers" != 0 ]; then
  set -- -n "$workers" "$@"
fi
pytest "$@" 2>&1 | tee build/logs/pytest.log
rc=${PIPESTATUS[0]}
exit "$rc"
