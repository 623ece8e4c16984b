"""Adaptation and training figures drawn from saved results and run folders (no display)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from metarl.evaluation.protocol import AdaptationResults, t_interval
from metarl.plots import curves, figures
from metarl.plots.figures import LEGEND_COLUMNS, adaptation_bands, plot_adaptation
from metarl.runs.logs import RunLogger

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_legend_sits_below_the_axes_and_grows_with_its_rows(tmp_path: Path):
    """The legend never covers a curve: it goes below the axes, LEGEND_COLUMNS entries a row."""
    curves = [_results(f"method{i}", 5 * i, seed=i) for i in range(2 * LEGEND_COLUMNS + 1)]
    few = plot_adaptation(curves[:LEGEND_COLUMNS], tmp_path / "few.png")
    many = plot_adaptation(curves, tmp_path / "many.png")
    _assert_png(many)
    height_few, width_few = mpimg.imread(few).shape[:2]
    height_many, width_many = mpimg.imread(many).shape[:2]
    assert width_many == width_few and height_many == height_few + round(2 * 0.22 * 110)  # two more rows


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


@pytest.mark.slow
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


# ------------------------------------------------------------------ plots that tell the truth


def _figure_text(fig) -> str:
    ax = fig.axes[0]
    legend = ax.get_legend() or fig.legends[0]
    return " | ".join([t.get_text() for t in ax.texts] + [t.get_text() for t in legend.get_texts()])


def _band_tops(fig) -> float:
    return max(float(np.max(c.get_paths()[0].vertices[:, 1])) for c in fig.axes[0].collections)


def test_bands_stop_at_the_return_bound():
    """A bandit's return is at most its N pulls: the 95% band near the top is cut at N."""
    returns = np.clip(9.4 + np.random.default_rng(0).normal(0, 1.2, size=(6, 3)), 0, 10)
    settings = {**SETTINGS, "return_bounds": [0.0, 10.0]}
    results = AdaptationResults("maml-trpo", "metarl/Bandit-K5-N10-v0", returns, settings)
    mean, half = t_interval(returns)
    assert np.max(mean + half) > 10  # the unclipped interval would cross the bound
    fig = figures.adaptation_figure([results])
    assert _band_tops(fig) <= 10.0 + 1e-9
    assert fig.axes[0].get_ylim()[1] < 10.0 + 0.2 * (10.0 - fig.axes[0].get_ylim()[0])


def test_steps_within_their_intervals_are_named_and_not_stretched():
    rng = np.random.default_rng(3)
    returns = -10.0 + np.array([0.0, 0.05, 0.1]) + rng.normal(0, 1.5, size=(6, 3))
    results = AdaptationResults("maml-trpo", "metarl/Navigation2D-v1", returns, dict(SETTINGS))
    fig = figures.adaptation_figure([results])
    assert "no step moves the mean past the 95% CIs: maml-trpo" in _figure_text(fig)
    low, high = fig.axes[0].get_ylim()
    mean, half = t_interval(returns)
    assert low <= np.min(mean - half) and high >= np.max(mean + half)  # the whole band is shown


def test_without_intervals_float_noise_is_not_a_slope():
    """One task, no interval: values 1e-6 apart get an axis of at least 5% of their size."""
    returns = np.array([[-20.0, -20.000001, -20.000002]])
    results = AdaptationResults("maml-trpo", "metarl/Navigation2D-v1", returns, {**SETTINGS, "num_tasks": 1})
    low, high = figures.adaptation_figure([results]).axes[0].get_ylim()
    assert high - low >= curves.MIN_RELATIVE_SPAN * 20.0


def test_coinciding_curves_are_offset_and_named():
    a = _results("maml-trpo", 0, seed=5)
    b = AdaptationResults("pretrained", a.env_id, a.returns.copy(), dict(SETTINGS))
    c = _results("random", -20, seed=6)
    fig = figures.adaptation_figure([a, b, c])
    text = _figure_text(fig)
    assert "maml-trpo (= pretrained)" in text and "pretrained (= maml-trpo)" in text
    assert "lines coincide: maml-trpo, pretrained" in text and "random (=" not in text
    xs = {line.get_label(): line.get_xdata() for line in fig.axes[0].get_lines()}
    dodge = np.asarray(xs["pretrained (= maml-trpo)"]) - np.asarray(xs["maml-trpo (= pretrained)"])
    np.testing.assert_allclose(dodge, curves.DODGE)
    np.testing.assert_allclose(xs["random"], [0, 1, 2])


def test_training_figure_names_coinciding_runs_and_clips_bands():
    rows = [{"iteration": i, "return_before": 8.0 + 0.01 * i, "return_after": 9.5 + 0.01 * i} for i in range(20)]
    noisy = [[{**r, "return_after": r["return_after"] + 0.6 * s} for r in rows] for s in (-1, 1)]
    runs = [("maml-trpo", noisy[0]), ("maml-trpo", noisy[1]), ("copy", rows)]
    fig = figures.training_figure(runs, "t", bounds=(0.0, 10.0))
    assert _band_tops(fig) <= 10.0 + 1e-9
    text = _figure_text(fig)
    assert "lines coincide" in text
    assert "maml-trpo, after adaptation (2 runs) (= copy, after adaptation)" in text


def test_return_bounds_of_the_shipped_families():
    import envs  # noqa: F401
    from metarl.tasks.build import registered_return_bounds

    assert registered_return_bounds("metarl/Bandit-K5-N10-v0", 10) == (0.0, 10.0)
    assert registered_return_bounds("metarl/Navigation2D-v1", 100) == (-np.inf, 0.0)
    assert registered_return_bounds("metarl/HalfCheetahVel-v0", 200) == (-np.inf, np.inf)
    assert registered_return_bounds("some.module:Unknown-v0", 10) == (-np.inf, np.inf)  # nothing imported
