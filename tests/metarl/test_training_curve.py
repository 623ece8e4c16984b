"""Training-curve figure: file written, non-trivial, drawn from rows or a run folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from metarl.plots.training_curve import _series_keys, plot_training_curve
from metarl.runs.logs import RunLogger


def _rows(n: int = 25, steps: int = 0) -> list[dict]:
    rows = []
    for i in range(n):
        row = {"iteration": i, "return_before": -40.0 + 0.5 * i, "return_after": -35.0 + 0.8 * i}
        for k in range(1, steps + 1):
            row[f"return_after_step{k}"] = -38.0 + 0.6 * i * k
        rows.append(row)
    return rows


def _assert_nontrivial_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 10_000
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20  # curves, text, not a blank canvas


@pytest.mark.slow
def test_plot_from_rows(tmp_path: Path):
    out = plot_training_curve(_rows(), tmp_path / "fig" / "curve.png", env_id="metarl/Navigation2D-v0")
    assert out == tmp_path / "fig" / "curve.png"
    _assert_nontrivial_png(out)


@pytest.mark.slow
def test_plot_from_run_dir_takes_env_id_from_config(tmp_path: Path):
    (tmp_path / "config.yaml").write_text("env_id: metarl/Navigation2D-v0\n")
    with RunLogger(tmp_path, tensorboard=False) as log:
        for row in _rows(8, steps=2):
            log.log(row.pop("iteration"), row)
    _assert_nontrivial_png(plot_training_curve(tmp_path, tmp_path / "curve.png"))


def test_series_include_per_step_keys_in_numeric_order():
    rows = _rows(3, steps=0)
    rows[0].update({"return_after_step10": 1.0, "return_after_step2": 1.0, "return_after_step1": 1.0})
    assert _series_keys(rows) == [
        ("return_before", "before adaptation"),
        ("return_after_step1", "after 1 step"),
        ("return_after_step2", "after 2 steps"),
        ("return_after_step10", "after 10 steps"),
        ("return_after", "after adaptation"),
    ]


def test_title_and_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from matplotlib.figure import Figure

    seen = {}
    real_savefig = Figure.savefig

    def spy(self, *args, **kwargs):
        ax = self.axes[0]
        seen.update(
            title=ax.get_title(),
            x=ax.get_xlabel(),
            y=ax.get_ylabel(),
            legend=[t.get_text() for t in ax.get_legend().get_texts()],
        )
        return real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    plot_training_curve(_rows(5, steps=1), tmp_path / "c.png", env_id="metarl/Navigation2D-v0")
    assert seen == {
        "title": "MAML-TRPO on metarl/Navigation2D-v0",
        "x": "meta-iteration",
        "y": "mean return per episode",
        "legend": ["before adaptation", "after 1 step", "after adaptation"],
    }


def test_no_return_metrics_is_an_error(tmp_path: Path):
    with pytest.raises(ValueError, match="no return_before"):
        plot_training_curve([{"iteration": 0, "kl": 0.1}], tmp_path / "c.png")
