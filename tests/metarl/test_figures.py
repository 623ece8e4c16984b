"""Adaptation and training figures drawn from saved results and run folders (no display)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from metarl.evaluation import AdaptationResults, t_interval
from metarl.figures import LEGEND_INSIDE_MAX, adaptation_bands, plot_adaptation
from metarl.runlog import RunLogger

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"num_tasks": 6, "seed": 0, "episodes_per_step": 20, "step_lrs": [0.1, 0.05], "horizon": 100}


def _plot_script():
    spec = importlib.util.spec_from_file_location("metarl_script_plot", ROOT / "scripts" / "plot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(method: str, shift: float, flat: bool = False, seed: int = 0) -> AdaptationResults:
    rng = np.random.default_rng(seed)
    steps = 1 if flat else 3
    returns = -40 + shift + 8 * np.arange(steps) + rng.normal(0, 2, size=(6, steps))
    return AdaptationResults(method, "metarl/Navigation2D-v0", returns, dict(SETTINGS), flat=flat)


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 10_000
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20


def test_adaptation_figure_from_saved_results(tmp_path: Path, capsys):
    files = [
        _results("maml-trpo", 10, seed=1).save(tmp_path / "maml1" / "adaptation_maml-trpo.json"),
        _results("maml-trpo", 12, seed=2).save(tmp_path / "maml2" / "adaptation_maml-trpo.json"),
        _results("pretrained", 0).save(tmp_path / "pre.json"),
        _results("oracle", 35, flat=True).save(tmp_path / "oracle.json"),
    ]
    out = tmp_path / "fig" / "adaptation.png"
    args = ["adaptation", str(files[0].parent), str(files[1]), str(files[2]), f"oracle={files[3]}", "--out", str(out)]
    assert _plot_script().main(args) == 0
    _assert_png(out)
    assert "figure:" in capsys.readouterr().out


def test_many_curves_put_the_legend_below_the_axes(tmp_path: Path):
    """Past LEGEND_INSIDE_MAX entries the legend goes below the axes, so the figure is taller."""
    curves = [_results(f"method{i}", 5 * i, seed=i) for i in range(LEGEND_INSIDE_MAX + 3)]
    few = plot_adaptation(curves[:LEGEND_INSIDE_MAX], tmp_path / "few.png")
    many = plot_adaptation(curves, tmp_path / "many.png")
    _assert_png(many)
    height_few, width_few = mpimg.imread(few).shape[:2]
    height_many, width_many = mpimg.imread(many).shape[:2]
    assert width_many == width_few and height_many == height_few + round(1.2 * 110)  # 1.2 inches at 110 dpi


def test_several_seeds_are_averaged_with_a_band_over_runs():
    runs = [_results("maml-trpo", s, seed=s) for s in (0, 5, 10)]
    (band,) = adaptation_bands(runs)
    mean, half = t_interval(np.stack([r.returns.mean(axis=0) for r in runs]))
    np.testing.assert_allclose(band.mean, mean)
    np.testing.assert_allclose(band.half, half)
    assert band.count == 3 and list(band.x) == [0, 1, 2]
    (single,) = adaptation_bands(runs[:1])
    np.testing.assert_allclose(single.half, t_interval(runs[0].returns)[1])


def test_mismatched_settings_are_reported(tmp_path: Path, capsys):
    a = _results("maml-trpo", 0).save(tmp_path / "a.json")
    other = _results("random", 0)
    other.settings["horizon"] = 50
    b = other.save(tmp_path / "b.json")
    assert _plot_script().main(["adaptation", str(a), str(b), "--out", str(tmp_path / "x.png")]) == 0
    assert "different horizon" in capsys.readouterr().err


def _fake_run(path: Path, algorithm: str, offset: float, adapted: bool) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"algorithm: {algorithm}\nenv_id: metarl/Navigation2D-v0\n")
    with RunLogger(path, tensorboard=False) as log:
        for i in range(30):
            row = {"return_before": -60 + offset + i}
            if adapted:
                row["return_after"] = -50 + offset + 1.2 * i
            log.log(i, row)
    return path


def test_training_figure_from_several_runs_and_methods(tmp_path: Path):
    runs = [_fake_run(tmp_path / f"maml{s}", "maml-trpo", s, True) for s in range(3)]
    runs.append(_fake_run(tmp_path / "pre", "pretrained", 0, False))
    out = tmp_path / "training.png"
    assert _plot_script().main(["training", *map(str, runs), "--out", str(out)]) == 0
    _assert_png(out)


def test_missing_results_are_an_error(tmp_path: Path, capsys):
    assert _plot_script().main(["adaptation", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "no adaptation_*.json" in capsys.readouterr().err
    with pytest.raises(ValueError):
        AdaptationResults.from_json({"format": "something else"})
