"""A committed golden run: a seeded training gives the same metrics and parameters, bit for bit.

Reorganising modules must not change what a seeded run computes. ``tests/golden/navigation.json``
holds, per CPU model, the metrics (timings left out) and a SHA-256 of the final parameters of
a tiny seeded 2D-navigation run (fast and exact meta-update, one step each). On a recorded CPU
model the test demands bit-identical numbers. Another model's math libraries round
differently, and conjugate gradient amplifies that within one meta-update (a few per cent in
the step by the second iteration), so there the test checks only what precedes the first
conjugate-gradient solve: the first iteration's sampling, returns and meta-gradient, to 1e-5.
When a change is meant to alter the numbers, rewrite the file from the repository root with
``python -m tests.test_golden_run --write`` (it keeps only this CPU model); add this CPU model
to it, the numbers unchanged, with ``--add``.
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
from metarl.config import load_config
from metarl.runs.checkpoint import latest_checkpoint, load_checkpoint
from metarl.runs.logs import read_metrics
from metarl.training.trainer import train

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


# the first iteration's metrics that no conjugate-gradient solve has touched yet
BEFORE_THE_FIRST_SOLVE = ("env_steps", "episodes_before", "episodes_after", "return_before", "return_after",
                          "grad_norm")


@pytest.mark.parametrize("name", sorted(RUNS))
def test_seeded_run_matches_the_golden_numbers(tmp_path: Path, name: str):
    machines = json.loads(GOLDEN.read_text())["machines"]
    got = golden_run(tmp_path, name)
    if cpu_model() in machines:
        expected = machines[cpu_model()][name]
        assert got["metrics"] == expected["metrics"]
        assert got["params_sha256"] == expected["params_sha256"]
    else:
        expected = next(iter(machines.values()))[name]
        assert [sorted(r) for r in got["metrics"]] == [sorted(r) for r in expected["metrics"]]
        first, want = got["metrics"][0], expected["metrics"][0]
        np.testing.assert_allclose([first[k] for k in BEFORE_THE_FIRST_SOLVE],
                                   [want[k] for k in BEFORE_THE_FIRST_SOLVE], rtol=1e-5)
        assert abs(first["loss_before"] - want["loss_before"]) < 1e-7


if __name__ == "__main__" and ("--write" in sys.argv or "--add" in sys.argv):
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: golden_run(Path(tmp), name) for name in sorted(RUNS)}
    machines = json.loads(GOLDEN.read_text())["machines"] if "--add" in sys.argv and GOLDEN.exists() else {}
    machines[cpu_model()] = runs
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"machines": machines}, indent=1) + "\n")
    print(f"wrote {GOLDEN} for {cpu_model()!r} ({len(machines)} CPU models)")
