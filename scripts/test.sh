#!/usr/bin/env bash
# `make test`: install what the tests need, run every test with pytest, and end
# with pytest's summary line. Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p build/logs
scripts/bootstrap.sh
scripts/test-hosts.sh
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HOME/.cache/monoscape/containers.conf}
export PATH=$ROOT/.venv/bin:$PATH
make --no-print-directory packages
set +e
pytest "$@" 2>&1 | tee build/logs/pytest.log
rc=${PIPESTATUS[0]}
exit "$rc"
