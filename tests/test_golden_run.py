"""A committed golden run: a seeded training gives the same metrics and parameters, bit for bit.

Reorganising modules must not change what a seeded run computes. ``tests/golden/navigation.json``
holds the metrics (timings left out) and a SHA-256 of the final parameters of a tiny seeded
2D-navigation run (fast and exact meta-update, one step each), written on this project's
machine kind. On a CPU of the recorded model the test demands bit-identical numbers; on
another CPU model, whose math libraries may round differently, it demands agreement to
1e-5 and leaves the parameter hash unchecked. Rewrite it (only when a change is meant to
alter the numbers) with ``python -m tests.test_golden_run --write`` from the repository root.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import agents
import envs  # noqa: F401  (registers the task environments)
from metarl.checkpoint import latest_checkpoint, load_checkpoint
from metarl.config import load_config
from metarl.runlog import read_metrics
from metarl.trainer import train

GOLDEN = Path(__file__).resolve().parent / "golden" / "navigation.json"
TIMING_KEYS = {"sample_seconds", "update_seconds", "env_steps_per_s", "seconds_per_iteration"}
RUNS = {
    "fast": ["--meta_update", "fast"],
    "exact": ["--meta_update", "exact", "--hvp_subsample", "0.5"],
}


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def golden_run(tmp: Path, name: str) -> dict:
    """Train the tiny seeded run ``name``; its metrics (no timings) and the parameters' SHA-256."""
    cfg = load_config("2d-navigation", [
        "--num_iterations", "3", "--meta_batch_size", "4", "--episodes_per_task", "5", "--horizon", "20",
        "--hidden_sizes", "16,16", "--num_threads", "1", "--tensorboard", "false", "--seed", "7",
        "--fisher_precision", "fp32", "--out_dir", str(tmp), "--run_name", name, *RUNS[name],
    ])
    run_dir = train(cfg, agents.build_learner, progress=False)
    rows = [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in read_metrics(run_dir)]
    params = load_checkpoint(latest_checkpoint(run_dir))["learner"]["policy"]
    digest = hashlib.sha256()
    for key in sorted(params):
        digest.update(key.encode() + params[key].detach().to(torch.float32).contiguous().numpy().tobytes())
    return {"metrics": rows, "params_sha256": digest.hexdigest()}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_seeded_run_matches_the_golden_numbers(tmp_path: Path, name: str):
    golden = json.loads(GOLDEN.read_text())
    expected, got = golden["runs"][name], golden_run(tmp_path, name)
    assert [sorted(r) for r in got["metrics"]] == [sorted(r) for r in expected["metrics"]]
    if golden["cpu_model"] == cpu_model():
        assert got["metrics"] == expected["metrics"]
        assert got["params_sha256"] == expected["params_sha256"]
    else:
        for row, want in zip(got["metrics"], expected["metrics"], strict=True):
            np.testing.assert_allclose([row[k] for k in sorted(want)], [want[k] for k in sorted(want)],
                                       rtol=1e-5, atol=1e-7)


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: golden_run(Path(tmp), name) for name in sorted(RUNS)}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"cpu_model": cpu_model(), "runs": runs}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
