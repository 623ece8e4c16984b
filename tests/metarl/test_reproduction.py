"""The reproduction of the paper's rows: plans, the aggregate over seeds, the paper's checks, the pages."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from metarl.config import config_to_dict, load_config, save_config
from metarl.evaluation.results import AdaptationResults
from metarl.evaluation.statistics import student_t_ppf
from metarl.reproduction.layout import preset_config, pretrained_dir, random_results, results_file, seed_dir
from metarl.reproduction.pages import adaptation_block, render_blocks, stale_blocks, update_page
from metarl.reproduction.rows import BASELINE_LR_GRID, ROWS, PaperRow, row_named
from metarl.reproduction.runner import plan, run_local
from metarl.reproduction.summary import summarise
from metarl.runs.folder import record_session
from metarl.runs.logs import RunLogger
from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


def _preset(tmp: Path, iterations: int = 2) -> Path:
    """A small 2D-navigation preset file."""
    text = (REPO / "metarl/presets/2d-navigation.yaml").read_text()
    text = text.replace("num_iterations: 100", f"num_iterations: {iterations}")
    text = text.replace("meta_batch_size: 20 ", "meta_batch_size: 3 ")
    text = text.replace("episodes_per_task: 20", "episodes_per_task: 2")
    path = tmp / "small.yaml"
    path.write_text(text)
    return path


def _row(preset: Path, seeds: tuple[int, ...] = (1, 2, 3), paper: float = 11.0) -> PaperRow:
    return PaperRow(
        "small",
        "Small navigation",
        str(preset),
        (paper, paper + 1, paper + 2),
        seeds=seeds,
        episodes_per_step=4,
        baseline_iterations=2,
        mujoco=False,
    )


def _fake_run(run_dir: Path, cfg, iterations: int, seconds: float = 2.0) -> None:
    save_config(cfg, run_dir / "config.yaml")
    with RunLogger(run_dir, tensorboard=False) as log:
        for i in range(iterations):
            log.log(
                i,
                {
                    "return_before": -1.0,
                    "return_after": 1.0,
                    "total_env_steps": 100.0 * (i + 1),
                    "seconds_per_iteration": seconds + i,
                },
            )
    record_session(run_dir, 0, cfg)


def _fake_results(
    path: Path,
    returns: np.ndarray,
    *,
    episodes: int = 4,
    iteration: int | None = 2,
    method: str = "maml-trpo",
    lr_grid: tuple[float, ...] = (),
    groups: list[str] | None = None,
) -> None:
    settings = {
        "num_tasks": len(returns),
        "num_steps": returns.shape[1] - 1,
        "episodes_per_step": episodes,
        "seed": 0,
        "step_budget": False,
        "training_iterations": iteration,
        "lr_grid": list(lr_grid),
        "step_lrs": [0.01 if lr_grid else 0.1] * (returns.shape[1] - 1),
        **({"lr_choice": {"grid": list(lr_grid), "chosen": 0.01}} if lr_grid else {}),
    }
    AdaptationResults(method, "metarl/Navigation2D-v1", returns, settings, groups=groups or []).save(path)


def _tasks(one_step_mean: float) -> np.ndarray:
    """40 tasks' returns after 0..3 steps whose means are ``one_step_mean - 5, one_step_mean, +1, +2``."""
    spread = np.linspace(-1.0, 1.0, 40)[:, None]
    return np.array([one_step_mean - 5, one_step_mean, one_step_mean + 1, one_step_mean + 2])[None, :] + spread


def _reproduction(tmp_path: Path, one_step: dict[int, float], pretrained: float = 5.0) -> tuple[PaperRow, Path]:
    preset = _preset(tmp_path)
    row = _row(preset)
    root = tmp_path / "results"
    for seed, value in one_step.items():
        run = seed_dir(root, row, seed)
        _fake_run(run, load_config(preset, ["--seed", str(seed), "--num_threads", "1"]), 2)
        _fake_results(results_file(run, "maml-trpo"), _tasks(value))
    base = pretrained_dir(root, row)
    _fake_run(base, preset_config(row, pretrained=True), 2)
    _fake_results(results_file(base, "pretrained"), _tasks(pretrained), method="pretrained", lr_grid=BASELINE_LR_GRID)
    _fake_results(random_results(root, row), _tasks(-20.0), iteration=None, method="random", lr_grid=BASELINE_LR_GRID)
    return row, root


def test_aggregate_over_seeds_and_the_papers_checks(tmp_path: Path):
    row, root = _reproduction(tmp_path, {1: 10.0, 2: 12.0, 3: 14.0})
    s = summarise(root, row)
    assert s.complete and [x.reportable for x in s.seeds] == [True, True, True]
    assert s.aggregate_mean == pytest.approx([7.0, 12.0, 13.0, 14.0])
    half = student_t_ppf(0.975, 2) * 2.0 / math.sqrt(3)  # std over seeds of 10, 12, 14 is 2
    assert s.aggregate_half_width == pytest.approx([half] * 4)
    assert s.checks == {"mean_at_least_paper": True, "every_seed_within_25_percent": True, "above_pretrained": True}
    t = s.seeds[0].training
    assert (t.iterations, t.target, t.env_steps, t.seconds, t.median_seconds) == (2, 2, 200, 5.0, 2.5)
    assert t.cpus and t.differences == {}
    assert s.pretrained is not None and s.pretrained.mean[1] == pytest.approx(5.0)
    assert s.random is not None and s.random.mean[1] == pytest.approx(-20.0)


def test_a_run_trained_on_several_cpu_kinds_names_the_iterations_of_each():
    from metarl.reproduction.summary import cpu_spans

    def session(first: int, cpu: str) -> dict:
        return {"first_iteration": first, "cpu": cpu}

    one_kind = [session(0, "A"), session(40, "A"), session(90, "A")]
    assert cpu_spans(one_kind, 100) == ["A"]
    # a session that completed nothing is left out; consecutive spans of one kind merge
    mixed = [session(0, "A"), session(50, "A"), session(50, "B"), session(120, "B"), session(182, "A")]
    assert cpu_spans(mixed, 200) == ["A for iterations 0–49", "B for iterations 50–181", "A for iterations 182–199"]
    # resumed from an earlier checkpoint: the later session redoes the overlap
    redone = [session(0, "A"), session(60, "B"), session(40, "A")]
    assert cpu_spans(redone, 100) == ["A"]
    redone = [session(0, "A"), session(60, "B"), session(70, "A"), session(65, "A")]
    assert cpu_spans(redone, 100) == ["A for iterations 0–59", "B for iterations 60–64", "A for iterations 65–99"]
    assert cpu_spans([], 10) == []
    # the learner's precision, where a session recorded it, is part of the span
    bf16, fp32 = {"products": "bf16", "inner_step": "bf16"}, {"products": "fp32", "inner_step": "fp32"}
    sessions = [session(0, "A") | {"arithmetic": fp32}, session(30, "B") | {"arithmetic": bf16}]
    assert cpu_spans(sessions, 50) == ["A, fp32 for iterations 0–29", "B, bf16 for iterations 30–49"]
    mixed_parts = [session(0, "B") | {"arithmetic": {"products": "bf16", "inner_step": "fp32"}}]
    assert cpu_spans(mixed_parts, 5) == ["B, products bf16, inner step fp32"]


def test_a_failing_seed_and_a_baseline_above_maml_fail_their_checks(tmp_path: Path):
    row, root = _reproduction(tmp_path, {1: 8.7, 2: 14.0, 3: 14.0}, pretrained=13.0)  # bound 0.8 * 11 = 8.8
    s = summarise(root, row)
    assert s.checks == {"mean_at_least_paper": True, "every_seed_within_25_percent": False, "above_pretrained": False}


def test_negative_paper_numbers_allow_25_percent_worse():
    assert row_named("halfcheetah-vel").one_step_bound() == pytest.approx(-78.6 * 1.25)
    assert row_named("halfcheetah-dir").one_step_bound() == pytest.approx(293.2 * 0.8)
    with pytest.raises(ValueError, match="unknown row 'cheetah'.*2d-navigation"):
        row_named("cheetah")


def test_runs_that_are_not_the_finished_preset_are_not_reported(tmp_path: Path):
    row, root = _reproduction(tmp_path, {1: 10.0, 2: 12.0, 3: 14.0})
    # seed 2: another inner step size; seed 3: evaluated with other episodes per step
    run2 = seed_dir(root, row, 2)
    save_config(load_config(row.preset, ["--seed", "2", "--fast_lr", "0.5"]), run2 / "config.yaml")
    _fake_results(results_file(seed_dir(root, row, 3), "maml-trpo"), _tasks(14.0), episodes=20)
    s = summarise(root, row)
    assert [x.reportable for x in s.seeds] == [True, False, False]
    assert s.seeds[1].training.differences == {"fast_lr": [0.1, 0.5]}
    assert not s.seeds[2].evaluation.protocol_ok
    assert not s.complete and s.checks == {}
    assert s.aggregate_mean == pytest.approx([5.0, 10.0, 11.0, 12.0])  # seed 1 alone
    # a checkpoint before the end is not the preset's result either
    _fake_results(results_file(seed_dir(root, row, 1), "maml-trpo"), _tasks(10.0), iteration=1)
    assert not summarise(root, row).seeds[0].reportable


def test_plan_trains_the_preset_resumes_and_skips_what_is_done(tmp_path: Path):
    preset = _preset(tmp_path)
    row = PaperRow(
        "small",
        "Small",
        str(preset),
        (1.0, 1.0, 1.0),
        seeds=(1,),
        episodes_per_step=4,
        baseline_iterations=2,
        mujoco=True,
    )
    root = tmp_path / "r"
    (job,) = plan(root, row, [1], threads=1, baselines=False)
    train, evaluate = job.commands
    assert train[1:4] == ["-m", "metarl", "train"]
    assert train[train.index("--config") + 1] == str(preset) and train[train.index("--seed") + 1] == "1"
    assert train[train.index("--env_kwargs") + 1] == "{nthread: 1}" and train[train.index("--num_threads") + 1] == "1"
    assert evaluate[1:4] == ["-m", "metarl", "evaluate"] and evaluate[4] == str(seed_dir(root, row, 1))
    assert evaluate[evaluate.index("--episodes-per-step") + 1] == "4" and "--step-budget" not in evaluate
    # half trained: resumed; finished and evaluated: nothing left
    run = seed_dir(root, row, 1)
    _fake_run(run, load_config(preset, ["--seed", "1"]), 1)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "iter_000001.pt").write_bytes(b"x")
    (job,) = plan(root, row, [1], baselines=False)
    assert job.commands[0][4:6] == ["--resume", str(run)]
    (run / "checkpoints" / "iter_000002.pt").write_bytes(b"x")
    _fake_results(results_file(run, "maml-trpo"), _tasks(1.0))
    (job,) = plan(root, row, [1], baselines=False)
    assert job.commands == []


@pytest.mark.slow
def test_reproduce_trains_and_evaluates_a_seed_end_to_end(tmp_path: Path):
    preset = _preset(tmp_path, iterations=2)
    row = _row(preset, seeds=(1,))
    root = tmp_path / "results"
    jobs = run_local(plan(root, row, [1], baselines=False), parallel=1, progress=False)
    assert [j.returncode for j in jobs] == [0], jobs[0].log.read_text()
    s = summarise(root, row)
    assert s.seeds[0].reportable and s.seeds[0].training.iterations == 2
    data = json.loads(results_file(seed_dir(root, row, 1), "maml-trpo").read_text())
    assert data["settings"]["training_iterations"] == 2 and data["settings"]["episodes_per_step"] == 4
    assert s.aggregate_mean == pytest.approx(data["mean"])  # one seed: its own curve, no interval
    assert all(math.isnan(h) for h in s.aggregate_half_width)


def test_pages_are_regenerated_and_drift_is_named(tmp_path: Path):
    row, root = _reproduction(tmp_path, {1: 10.0, 2: 12.0, 3: 14.0})
    blocks = render_blocks(root, tmp_path, [row])
    page = (
        "# Results\n\nprose\n\n<!-- generated: row:small (scripts/results_pages.py) -->\nold\n"
        "<!-- end generated: row:small -->\n"
    )
    new = update_page(page, blocks)
    assert stale_blocks(page, blocks) == ["row:small"] and stale_blocks(new, blocks) == []
    assert "| **mean over 3 seeds** | **7.0 ± " in new and "| seed 2 | 7.0 ± 0.2 | 12.0 ± 0.2 |" in new
    assert "above the pretrained baseline: yes" in new
    assert "| pretrained (TRPO on all tasks, seed 1; inner step 0.01, chosen on validation tasks) | 0.0 ± 0.2" in new
    assert "| [Small navigation](#small-navigation) | 11.0 / 12.0 / 13.0 | **12.0 ± " in blocks["summary"]
    with pytest.raises(ValueError, match="'nothing'"):
        update_page("<!-- generated: nothing (scripts/results_pages.py) -->\n<!-- end generated: nothing -->", blocks)


def test_a_seed_that_adapts_one_way_only_shows_per_task_group(tmp_path: Path):
    row, root = _reproduction(tmp_path, {1: 10.0, 2: 12.0, 3: 14.0})
    returns = _tasks(12.0)
    returns[:20, 1] -= 10.0  # forward tasks 10 lower after one step, backward tasks 10 higher
    returns[20:, 1] += 10.0
    _fake_results(
        results_file(seed_dir(root, row, 2), "maml-trpo"), returns, groups=["forward"] * 20 + ["backward"] * 20
    )
    s = summarise(root, row)
    assert s.seeds[1].evaluation is not None and s.seeds[0].evaluation is not None
    means = {name: mean[1] for name, (mean, _) in s.seeds[1].evaluation.by_group.items()}
    assert means == pytest.approx({"forward": 12.0 - 10.0 - 0.5128, "backward": 12.0 + 10.0 + 0.5128}, abs=1e-3)
    assert s.seeds[0].evaluation.by_group == {}
    block = render_blocks(root, tmp_path, [row])["row:small"]
    assert "After one step, per task group: seed 2: backward 22.5 ± 0.1, forward 1.5 ± 0.1." in block


def test_comparisons_show_each_seed_and_each_runs_task_groups(tmp_path: Path):
    row, root = _reproduction(tmp_path, {1: 10.0})
    preset = Path(row.preset)
    groups = ["forward"] * 20 + ["backward"] * 20
    for seed, one_step in ((1, 30.0), (2, 10.0)):
        run = root / "small" / "comparisons" / f"lr-0.2-seed{seed}"
        _fake_run(run, load_config(preset, ["--seed", str(seed), "--fast_lr", "0.2"]), 2)
        returns = _tasks(one_step)
        returns[:20, 1] -= 10.0  # forward tasks 10 below the mean after one step, backward 10 above
        returns[20:, 1] += 10.0
        _fake_results(results_file(run, "maml-trpo"), returns, groups=groups)
    block = render_blocks(root, tmp_path, [row])["row:small"]
    # one line for the two seeds of the same settings: each seed's value, then the mean over seeds
    assert "| fast_lr 0.2 (preset 0.1) | 1, 2 | 30.0, 10.0 | 2 | 15.0 ± 127.1 | 20.0 ± 127.1 |" in block
    assert (
        "After one step, per task group: `lr-0.2-seed1`: backward 40.5 ± 0.1, forward 19.5 ± 0.1; "
        "`lr-0.2-seed2`: backward 20.5 ± 0.1, forward −0.5 ± 0.1." in block
    )


def _grouped_run(run_dir: Path, cfg, iterations: int) -> None:
    """A run whose training metrics have task groups: iteration i returns -i (backward) and i (forward)."""
    save_config(cfg, run_dir / "config.yaml")
    with RunLogger(run_dir, tensorboard=False) as log:
        for i in range(iterations):
            log.log(
                i,
                {
                    "return_before": 0.0,
                    "return_after": 1.0,
                    "return_before@backward": -float(i),
                    "return_before@forward": float(i),
                    "return_after@backward": -float(i) + 100.0,
                    "return_after@forward": float(i) + 200.0,
                },
            )


def test_training_per_task_group_sets_seeds_and_comparisons_side_by_side(tmp_path: Path):
    from metarl.reproduction.group_curves import row_group_curves

    row, root = _reproduction(tmp_path, {1: 10.0})
    preset = Path(row.preset)
    _grouped_run(seed_dir(root, row, 2), load_config(preset, ["--seed", "2"]), 35)
    comparison = root / "small" / "comparisons" / "lr-0.2"
    _grouped_run(comparison, load_config(preset, ["--seed", "2", "--fast_lr", "0.2"]), 12)
    curves = row_group_curves(root, row)
    assert [c.folder for c in curves] == ["seed2", "comparisons/lr-0.2"]  # seed1 logged no task groups
    # complete windows of 10 only: 0-9 and 20-29 of 35 iterations, 0-9 of 12
    assert sorted(curves[0].after) == [0, 20] and sorted(curves[1].after) == [0]
    assert curves[0].before[20] == {"backward": -24.5, "forward": 24.5}
    assert curves[0].after[0] == {"backward": 95.5, "forward": 204.5}
    assert curves[1].differences == {"fast_lr": (0.1, 0.2)}
    block = render_blocks(root, tmp_path, [row])["row:small"]
    assert "| iterations | `seed2` | `comparisons/lr-0.2` |" in block
    assert "| 0–9 | −4/4 → 96/204 | −4/4 → 96/204 |" in block  # mean of 0..9 is 4.5: rounds to even
    assert "| 20–29 | −24/24 → 76/224 |  |" in block
    assert "- `comparisons/lr-0.2`: seed 2; fast_lr 0.2 (preset 0.1)." in block


def test_training_cost_block_extrapolates_the_presets_own_iterations(tmp_path: Path):
    from metarl.reproduction.pages import training_cost_block

    run = tmp_path / "cost" / "2d-navigation"
    cfg = load_config("2d-navigation", ["--num_iterations", "3", "--num_threads", "1"])
    save_config(cfg, run / "config.yaml")
    with RunLogger(run, tensorboard=False) as log:
        for i, seconds in enumerate((40.0, 30.0, 50.0)):
            timing = {"sample_seconds": seconds - 10, "update_seconds": 10.0, "seconds_per_iteration": seconds}
            log.log(i, {"return_before": -1.0, "env_steps": 74000.0, "total_env_steps": 74000.0 * (i + 1), **timing})
    record_session(run, 0, cfg)
    block = training_cost_block(tmp_path / "cost", "cost")
    assert "| `2d-navigation` | 20 × 20 × 100 | 3 | 74,000 | 40 (30 + 10) | 100 × 40 s = 67 min | 1 |" in block
    save_config(load_config("2d-navigation", ["--num_iterations", "3", "--fast_lr", "0.2"]), run / "config.yaml")
    with pytest.raises(ValueError, match="differs in \\['fast_lr'\\]"):
        training_cost_block(tmp_path / "cost", "cost")


def test_adaptation_block_tabulates_each_results_file(tmp_path: Path):
    rows = np.array([[-10.0, -4.0], [-12.0, -6.0], [-14.0, -8.0]])
    for method, shift in (("random", -50.0), ("maml-trpo", 0.0)):
        settings = {"num_tasks": 3, "seed": 0, "episodes_per_step": 20, "training_iterations": 7}
        AdaptationResults(method, "metarl/Navigation2D-v1", rows + shift, settings).save(
            tmp_path / f"adaptation_{method}.json"
        )
    half = student_t_ppf(0.975, 2) * 2.0 / math.sqrt(3)
    table = adaptation_block(tmp_path, "somewhere")
    assert table.splitlines()[2] == f"| maml-trpo | −12.0 ± {half:.1f} | −6.0 ± {half:.1f} |"
    assert table.splitlines()[3].startswith("| random | −62.0 ± ")  # the method order, not the file order
    assert "3 held-out tasks" in table and "trained for 7 meta-iterations" in table and "`somewhere`" in table
    with pytest.raises(ValueError, match="no adaptation results files"):
        adaptation_block(tmp_path / "empty", "empty")


def test_committed_pages_match_the_committed_runs():
    assert load_script("results_pages").main(["--check"]) == 0


def test_a_stale_benchmark_output_stops_the_pages_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    script = load_script("results_pages")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    stale = {"settings": {"config": "halfcheetah-dir", "meta_batch_size": 40}, "seconds_per_iteration": 1.0}
    (tmp_path / "benchmarks" / "results" / "meta_iteration_halfcheetah-dir.json").write_text(json.dumps(stale))
    script.REPOSITORY = tmp_path
    assert script.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "meta_iteration_halfcheetah-dir: the output records no configuration" in err


def test_every_row_names_a_shipped_preset():
    for row in ROWS:
        assert preset_config(row).num_iterations > 0


def test_benchmark_tables_come_from_the_benchmarks_outputs(tmp_path: Path):
    from metarl.reproduction.benchmark_tables import benchmark_blocks

    assert "Not measured yet" in benchmark_blocks(tmp_path)["benchmark:mujoco_family"]
    result = {
        "machine": {"cpu": "Some CPU (AVX2)", "cores": 2, "torch": "2", "mujoco": "4"},
        "date": "2026-01-01",
        "settings": {"family": "examples/X-v0", "num_envs": 8, "steps": 5, "threads": 1, "repeats": 3},
        "env_steps_per_second": {"single": 1000.0, "batched": 4500.0, "raw": 5000.0},
        "batched_over_raw": 0.9,
        "batched_over_single": 4.5,
        "targets": {"batched_over_raw": 0.8, "batched_over_single": 3.0},
    }
    (tmp_path / "mujoco_family.json").write_text(json.dumps(result))
    table = benchmark_blocks(tmp_path)["benchmark:mujoco_family"]
    assert "| the family's `BatchedMujocoTaskEnv` | 4,500 |" in table and "**0.90×** (target ≥ 0.8×)" in table
    assert "Some CPU (AVX2), 2 cores" in table


def test_a_meta_iteration_benchmark_of_another_environment_than_the_presets_is_refused(tmp_path: Path):
    from metarl.reproduction.benchmark_tables import benchmark_blocks

    settings = {"config": "halfcheetah-dir", "meta_batch_size": 40, "episodes_per_task": 20, "horizon": 200}
    result = {
        "machine": {"cpu": "Some CPU (AVX2)", "cores": 2, "torch": "2", "mujoco": "4"},
        "date": "2026-01-01",
        "settings": {**settings, "repeats": 3, "torch_threads": 2, "mujoco_threads": 2, "env_id": "x"},
        "seconds_per_iteration": 10.0,
        "sampling_seconds": 8.0,
        "meta_update_seconds": 2.0,
        "sample_physics_seconds": 5.0,
    }
    path = tmp_path / "meta_iteration_halfcheetah-dir.json"
    result["settings"]["env_id"] = load_config("halfcheetah-dir").env_id
    result["settings"]["config_values"] = config_to_dict(load_config("halfcheetah-dir"))
    path.write_text(json.dumps(result))
    table = benchmark_blocks(tmp_path)["benchmark:meta_iteration"]
    assert f"| `halfcheetah-dir` | `{load_config('halfcheetah-dir').env_id}` | 40 × 20 × 200 | 10.00 s |" in table
    result["settings"]["env_id"] = "metarl/HalfCheetahDir-v0"
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="measured on metarl/HalfCheetahDir-v0, the preset now trains on"):
        benchmark_blocks(tmp_path)


def test_a_meta_iteration_benchmark_of_other_settings_than_the_presets_is_refused(tmp_path: Path):
    from metarl.reproduction.benchmark_tables import benchmark_blocks

    preset = load_config("halfcheetah-dir")
    settings = {"config": "halfcheetah-dir", "env_id": preset.env_id, "meta_batch_size": 40}
    result = {
        "machine": {"cpu": "Some CPU (AVX2)", "cores": 2, "torch": "2", "mujoco": "4"},
        "date": "2026-01-01",
        "settings": settings | {"episodes_per_task": 20, "horizon": 200, "repeats": 3, "torch_threads": 2},
        "seconds_per_iteration": 10.0,
        "sampling_seconds": 8.0,
        "meta_update_seconds": 2.0,
    }
    path = tmp_path / "meta_iteration_halfcheetah-dir.json"
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="records no configuration: run benchmarks/meta_iteration.py"):
        benchmark_blocks(tmp_path)
    # how it ran (threads, seed, folder) and the run's length may differ; a learning setting may not
    how = dataclasses.replace(preset, num_threads=1, seed=7, num_iterations=3, out_dir="elsewhere")
    result["settings"]["config_values"] = config_to_dict(how)
    path.write_text(json.dumps(result))
    assert "| `halfcheetah-dir` |" in benchmark_blocks(tmp_path)["benchmark:meta_iteration"]
    other = dataclasses.replace(preset, fvp_inner_fraction=0.1)
    result["settings"]["config_values"] = config_to_dict(other)
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"measured with fvp_inner_fraction 0.1 \(preset now 1.0\)"):
        benchmark_blocks(tmp_path)


def test_the_fast_meta_update_table_gives_each_option_against_the_exact_step(tmp_path: Path):
    from metarl.reproduction.benchmark_tables import benchmark_blocks

    env_id = load_config("halfcheetah-dir").env_id
    settings = {"config": "halfcheetah-dir", "overrides": [], "env_id": env_id, "checkpoint": "run/iter_000500.pt"}
    sizes = {"meta_batch_size": 40, "episodes_per_task": 20, "horizon": 200, "batches": 2, "torch_threads": 2}
    result = {
        "machine": {"cpu": "Some CPU (AVX2)", "cores": 2, "torch": "2", "mujoco": "4"},
        "date": "2026-01-01",
        "settings": {**settings, **sizes},
        "options": {
            "exact": {"update_seconds": 18.0, "cosine": 1.0, "cosine_min": 1.0}
            | {"surrogate_gain": 0.004, "kl_after": 0.0078, "ls_steps": 2.0},
            "post=0.1+inner=0.1": {"update_seconds": 4.0, "cosine": 0.7769, "cosine_min": 0.7419}
            | {"surrogate_gain": 0.0025, "kl_after": 0.008, "ls_steps": 3.0},
        },
    }
    (tmp_path / "fast_meta_update_halfcheetah-dir.json").write_text(json.dumps(result))
    table = benchmark_blocks(tmp_path)["benchmark:fast_meta_update"]
    assert f"`halfcheetah-dir` on `{env_id}`, 40 × 20 × 200, θ of `run/iter_000500.pt`; medians over 2" in table
    assert "| `post=0.1+inner=0.1` | 4.00 s | 4.50× | 0.7769 (0.7419) | 0.00250 (62%) | 0.00800 | 3 |" in table
    assert "| `exact` | 18.00 s | 1.00× | 1.0000 (1.0000) | 0.00400 (100%) |" in table


def test_a_runs_differences_leave_out_the_thread_count_of_its_env_kwargs():
    from metarl.reproduction.layout import differences_from_preset

    preset = load_config("halfcheetah-dir")
    threads_only = load_config("halfcheetah-dir", ["--env_kwargs", "{nthread: 1}", "--num_threads", "1"])
    assert differences_from_preset(threads_only, preset) == {}
    clipped = load_config("halfcheetah-dir", ["--env_kwargs", "{nthread: 1, clip_control_cost: true}"])
    assert differences_from_preset(clipped, preset) == {"env_kwargs": ({}, {"clip_control_cost": True})}
