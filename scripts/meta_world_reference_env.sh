#!/usr/bin/env bash
# The reference environment for the Meta-World check: metaworld 3.1.1 with its own pin, MuJoCo 3.3.0.
#   scripts/meta_world_reference_env.sh [DIR]   (default /tmp/metaworld-mujoco-3.3.0)
# then: DIR/bin/python scripts/meta_world_experts.py --out results/meta-world/experts_mujoco-3.3.0.json
set -euo pipefail
dir="${1:-/tmp/metaworld-mujoco-3.3.0}"
python3 -m venv "$dir"
here="$(cd "$(dirname "$0")/.." && pwd)"
# the same numpy and gymnasium as the project (constraints.txt), metaworld's own MuJoCo
pins=$(grep -E "^(numpy|gymnasium)==" "$here/constraints.txt")
"$dir/bin/pip" install --quiet "metaworld==3.1.1" "mujoco==3.3.0" $pins packaging
"$dir/bin/python" -c "import metaworld, mujoco; print('reference environment ready: mujoco', mujoco.__version__)"
