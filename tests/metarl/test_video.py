"""Videos of adaptation (``scripts/evaluate.py --video``): navigation with matplotlib, locomotion with MuJoCo."""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import envs  # noqa: F401  (registers the task environments)
from metarl.plots.video import HEADLESS_HELP, RenderError, rendered_episode, side_by_side, write_video
from tests.conftest import load_script


def _frames(path: Path) -> np.ndarray:
    return iio.imread(path, index=None)


@pytest.mark.slow
def test_navigation_video_shows_each_step_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    evaluate = load_script("evaluate")
    args = [
        "2d-navigation",
        "--random",
        "--num-tasks",
        "3",
        "--num-steps",
        "2",
        "--episodes-per-step",
        "4",
        "--threads",
        "1",
        "--video",
        "2",
        "--video-size",
        "120x90",
        "--out",
        str(tmp_path),
    ]
    assert evaluate.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("video:") == 2 and (tmp_path / "adaptation_random.json").is_file()
    frames = _frames(tmp_path / "adaptation_task0.gif")
    assert frames.shape[1:] == (90 + 18, 3 * 120, 3)  # caption strip over three panels: 0, 1, 2 steps
    assert 2 <= frames.shape[0] <= 101  # one episode of at most the horizon, plus the reset frame
    first, last = frames[0], frames[-1]
    assert not np.array_equal(first, last)  # the agent moved
    panels = [last[18:, i * 120 : (i + 1) * 120] for i in range(3)]
    assert not np.array_equal(panels[0], panels[2])  # before and after two steps differ


def _tiny_config(tmp_path: Path, env_id: str) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(f"env_id: {env_id}\nhorizon: 12\nhidden_sizes: [8]\nmeta_batch_size: 2\nepisodes_per_task: 2\n")
    return path


def _have_gl() -> bool:
    backend = os.environ.get("MUJOCO_GL", "egl")
    return ctypes.util.find_library({"osmesa": "OSMesa"}.get(backend, "EGL")) is not None


@pytest.mark.slow
def test_locomotion_video_renders_headless_with_mujoco(tmp_path: Path):
    """MuJoCo's off-screen renderer (EGL here): the cheetah in every panel, the camera following it."""
    if not _have_gl() and not os.environ.get("METARL_REQUIRE_GL"):
        pytest.skip(f"no headless GL library: {HEADLESS_HELP}")
    evaluate = load_script("evaluate")
    fmt = "mp4" if importlib.util.find_spec("imageio_ffmpeg") else "gif"
    args = [
        str(_tiny_config(tmp_path, "metarl/HalfCheetahVel-v0")),
        "--random",
        "--num-tasks",
        "2",
        "--num-steps",
        "1",
        "--threads",
        "1",
        "--video",
        "1",
        "--video-size",
        "96x64",
        "--video-format",
        fmt,
        "--out",
        str(tmp_path / "out"),
    ]
    assert evaluate.main(args) == 0
    frames = _frames(tmp_path / "out" / f"adaptation_task0.{fmt}")
    assert frames.shape[0] == 13 and frames.shape[2] == 2 * 96  # reset frame + 12 steps; two panels
    assert frames.shape[1] in (64 + 18, 64 + 18 + 1)
    picture = frames[:, 20:, :96].astype(float)
    assert picture.std() > 20  # a rendered scene, not a blank frame
    assert np.abs(np.diff(picture, axis=0)).mean() > 0.5  # it moves


def test_mp4_without_the_extra_and_families_that_cannot_render_stop_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    evaluate = load_script("evaluate")
    assert evaluate.main(["bandit-k5-n10", "--random", "--video", "1", "--out", str(tmp_path)]) == 2
    assert "metarl/Bandit-K5-N10-v0 cannot render frames" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else 1)
    assert (
        evaluate.main(["2d-navigation", "--random", "--video", "1", "--video-format", "mp4", "--out", str(tmp_path)])
        == 2
    )
    assert "MP4 needs imageio-ffmpeg: pip install" in capsys.readouterr().err
    assert evaluate.main(["2d-navigation", "--random", "--video", "50", "--out", str(tmp_path)]) == 2
    assert "only 40 held-out tasks" in capsys.readouterr().err


def test_a_renderer_that_fails_says_what_to_install():
    class NoGL:
        def get_wrapper_attr(self, name):
            return lambda task: None

        def reset(self, seed=None):
            return np.zeros(2), {}

        def render(self):
            raise ImportError("Cannot initialize a EGL device display")

    with pytest.raises(RenderError, match="rendering failed .*EGL device") as info:
        rendered_episode(NoGL(), lambda obs: obs, None, 0, 5)
    assert HEADLESS_HELP in str(info.value)


def test_side_by_side_holds_the_last_frame_of_a_short_episode(tmp_path: Path):
    short = [np.full((10, 8, 3), 50, np.uint8), np.full((10, 8, 3), 60, np.uint8)]
    long = [np.full((10, 8, 3), v, np.uint8) for v in (100, 110, 120, 130)]
    frames = side_by_side([short, long], ["a", "b"])
    assert len(frames) == 4 and frames[0].shape == (28, 16, 3)
    assert (frames[3][18:, :8] == 60).all() and (frames[3][18:, 8:] == 130).all()
    path = write_video(frames, tmp_path / "v.gif", fps=10)
    assert _frames(path).shape == (4, 28, 16, 3)
    with pytest.raises(RenderError, match="unknown video format '.avi'"):
        write_video(frames, tmp_path / "v.avi", fps=10)


@pytest.mark.slow
def test_a_family_named_by_its_module_films_its_adaptation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``evaluate RUN --video 1`` of a run whose env id is ``module:Id`` (the id resolves before rendering)."""
    module = "vid_family_for_test"
    (tmp_path / f"{module}.py").write_text(
        "from metarl import register_task_env\n"
        "register_task_env('vidtest/Nav-v0', entry_point='envs.navigation:Navigation2DEnv', max_episode_steps=10)\n"
    )
    monkeypatch.chdir(tmp_path)
    env_id = f"{module}:vidtest/Nav-v0"
    train = [
        *"--config 2d-navigation --num_iterations 1 --meta_batch_size 2 --episodes_per_task 2".split(),
        "--horizon",
        "10",
        "--hidden_sizes",
        "[8]",
        "--num_threads",
        "1",
        "--tensorboard",
        "false",
        "--no-progress",
        "--env_id",
        env_id,
        "--out_dir",
        str(tmp_path),
        "--run_name",
        "run",
    ]
    assert load_script("train").main(train) == 0
    argv = [
        str(tmp_path / "run"),
        "--num-tasks",
        "1",
        "--num-steps",
        "1",
        "--threads",
        "1",
        "--video",
        "1",
        "--video-size",
        "64x48",
        "--trust-env-module",
        module,
    ]
    assert load_script("evaluate").main(argv) == 0
    assert _frames(tmp_path / "run" / "eval" / "adaptation_task0.gif").shape[0] > 1


@pytest.mark.slow
def test_the_command_line_films_in_a_fresh_process(tmp_path: Path):
    """``--video`` resolves the env id after the installed task families are loaded (a new process has none)."""
    import subprocess
    import sys

    args = ["evaluate", "2d-navigation", "--random", "--num-tasks", "2", "--num-steps", "1", "--episodes-per-step", "2"]
    args += ["--threads", "1", "--video", "1", "--video-size", "60x45", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "metarl", *args], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "adaptation_task0.gif").is_file()
