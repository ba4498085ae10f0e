#!/usr/bin/env bash
# `make demo`: the main job on the embedded lab.
# Today the lab cloud and site playbook do not exist yet; this runs what exists:
# the mono_runtime role converged on a podman test host serving the sample app,
# checks the app answers, and leaves the host running (`molecule destroy -s mono_runtime`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH=$ROOT/.venv/bin:$PATH
echo "demo: the lab cloud and site.yml are not built yet; converging mono_runtime on a podman host instead"
molecule converge -s mono_runtime
podman exec monoscape-mono-runtime curl -sf "http://127.0.0.1:9081/demo/hello/?q=demo"
echo "demo: sample app served by the podman host monoscape-mono-runtime at :9081/demo/hello/"
