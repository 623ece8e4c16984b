"""Videos of adaptation: one task's episode before adaptation and after 1..K steps, side by side.

Each panel is one episode of the policy's mean action (no exploration noise) with the
parameters it had after that many inner steps, rendered by the single env in
``render_mode="rgb_array"``: MuJoCo's off-screen renderer for the locomotion families
(headless through EGL or OSMesa, :func:`use_headless_gl`), matplotlib for 2D navigation.
Episodes that end early hold their last frame. GIF is written with Pillow (always
there); MP4 needs the ``video`` extra (imageio-ffmpeg).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.system.files import atomic_path
from metarl.tasks.protocol import Task
from metarl.tasks.resolve import check_env_id

HEADLESS_HELP = (
    "MuJoCo renders off-screen through EGL or OSMesa: install Debian's libegl1 and libgl1-mesa-dri "
    "(EGL, MUJOCO_GL=egl, the default) or libosmesa6 (then set MUJOCO_GL=osmesa)"
)
"""What to install for headless rendering, in every rendering error."""
FORMATS = ("gif", "mp4")


class RenderError(RuntimeError):
    """A video cannot be made here; the message says why and what to install."""


def use_headless_gl() -> str:
    """Choose MuJoCo's off-screen GL backend (``MUJOCO_GL``, default ``egl``) before anything imports OpenGL."""
    backend = os.environ.setdefault("MUJOCO_GL", "egl")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


def check_renderable(env_id: str) -> Any:
    """The single-env class of ``env_id``; :class:`RenderError` unless it offers ``render_mode="rgb_array"``."""
    entry = gym.spec(env_id).entry_point
    cls = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    modes = list(getattr(cls, "metadata", {}).get("render_modes", []))
    if "rgb_array" not in modes:
        raise RenderError(
            f"{env_id} cannot render frames (its render_modes are {modes}); a video needs an env with "
            "render_mode 'rgb_array'"
        )
    return cls


def make_render_env(env_id: str, width: int, height: int, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """The single env ``env_id`` rendering ``width × height`` RGB frames; :class:`RenderError` if it cannot.

    Args:
        env_id: The env's id.
        width: Frame width in pixels.
        height: Frame height in pixels.
        env_kwargs: Keyword arguments of the env.
    """
    cls = check_renderable(env_id)
    kwargs = dict(env_kwargs or {})
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(q.kind is inspect.Parameter.VAR_KEYWORD for q in parameters.values())
    if takes_any or ("width" in parameters and "height" in parameters):  # MuJoCo envs take them via **kwargs
        kwargs.update(width=width, height=height)
    return gym.make(env_id, render_mode="rgb_array", disable_env_checker=True, **kwargs)


def mean_action_fn(policy: Any, params: Mapping[str, torch.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    """The policy's most likely action for one observation, with one task's ``params`` (``[1, ...]``)."""

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, 1, -1)
            dist = policy.distribution(x, params)
            if isinstance(dist, torch.distributions.Categorical):
                return dist.probs.argmax(-1).reshape(()).numpy()
            return dist.mean.reshape(-1).numpy()

    return act


def rendered_episode(
    env: gym.Env, act: Callable[[np.ndarray], np.ndarray], task: Task, seed: int, horizon: int
) -> tuple[list[np.ndarray], float]:
    """Frames of one episode on ``task`` (reset with ``seed``) and its return.

    Args:
        env: The rendering env.
        act: The policy's action for an observation.
        task: The task to set.
        seed: The reset's seed.
        horizon: The most steps.
    """
    env.get_wrapper_attr("set_task")(task)
    obs, _ = env.reset(seed=seed)
    try:
        frames = [np.asarray(env.render())]
    except Exception as exc:
        raise RenderError(f"rendering failed ({type(exc).__name__}: {exc}); {HEADLESS_HELP}") from exc
    total = 0.0
    for _ in range(horizon):
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total += float(reward)
        frames.append(np.asarray(env.render()))
        if terminated or truncated:
            break
    return frames, total


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with a white strip above it holding ``text``."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (frame.shape[1], 18), "white")
    ImageDraw.Draw(strip).text((4, 3), text, fill="black")
    return np.concatenate([np.asarray(strip), frame[..., :3]], axis=0)


def side_by_side(panels: Sequence[Sequence[np.ndarray]], captions: Sequence[str]) -> list[np.ndarray]:
    """One frame sequence with the panels next to each other, each captioned; short ones hold their last frame."""
    length = max(len(p) for p in panels)
    out = []
    for t in range(length):
        row = [_caption(p[min(t, len(p) - 1)], c) for p, c in zip(panels, captions, strict=True)]
        frame = np.concatenate(row, axis=1)
        out.append(frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2])  # even sides for H.264
    return out


def check_video_format(video_format: str) -> None:
    """Raise :class:`RenderError` now if ``video_format`` cannot be written here (before any work)."""
    if video_format not in FORMATS:
        raise RenderError(f"unknown video format {video_format!r}; use one of {', '.join(FORMATS)}")
    if video_format == "mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise RenderError(
            "MP4 needs imageio-ffmpeg: pip install -c constraints.txt -e '.[video]' "
            "(or write a GIF: --video-format gif)"
        )


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int) -> Path:
    """Write ``frames`` as GIF or MP4 (by ``path``'s suffix).

    Args:
        frames: RGB frames ``[height, width, 3]``.
        path: The file (``.gif`` or ``.mp4``).
        fps: Frames per second.
    """
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix not in (".gif", ".mp4"):
        raise RenderError(f"unknown video format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if path.suffix == ".mp4":
        check_video_format("mp4")
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, list(frames), duration=1000 / fps, loop=0)
        else:
            with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=2) as writer:
                for frame in frames:
                    writer.append_data(frame)  # type: ignore[attr-defined]
    return path


def adaptation_videos(
    env_id: str,
    policy: Any,
    tasks: Sequence[Task],
    step_params: Sequence[Mapping[str, torch.Tensor]],
    out_dir: str | Path,
    *,
    horizon: int,
    env_kwargs: Mapping[str, Any] | None = None,
    video_format: str = "gif",
    size: tuple[int, int] = (320, 240),
    fps: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write one video per task: the policy before adaptation and after each inner step, side by side.

    Args:
        env_id: Registered task-env id (its single env renders the frames).
        policy: The policy whose ``distribution(obs, params)`` chooses the actions.
        tasks: The tasks to film, in the order of the task axis of ``step_params``.
        step_params: Per-task parameters (``[T, ...]`` tensors) before adaptation and after each step:
            ``AdaptationBatch.params`` of the evaluation.
        out_dir: Folder for ``adaptation_task<i>.<format>``.
        horizon: Longest episode (the run's horizon).
        env_kwargs: The run's env keyword arguments.
        video_format: ``gif`` or ``mp4``.
        size: ``(width, height)`` of one panel.
        fps: Frames per second (default: the env's ``render_fps``, else 20).
        seed: Reset seed of every episode (all panels of a task start alike).
    """
    check_video_format(video_format)
    env = make_render_env(check_env_id(env_id), *size, env_kwargs)  # a 'module:Id' id names its registered Id
    fps = int(fps or env.metadata.get("render_fps") or 20)
    paths = []
    try:
        for i, task in enumerate(tasks):
            panels, captions = [], []
            for k, params in enumerate(step_params):
                one = {name: p[i : i + 1] for name, p in params.items()}
                frames, total = rendered_episode(env, mean_action_fn(policy, one), task, seed, horizon)
                panels.append(frames)
                what = "before adaptation" if k == 0 else f"after {k} step{'s' if k > 1 else ''}"
                captions.append(f"{what}: return {total:.1f}")
            path = Path(out_dir) / f"adaptation_task{i}.{video_format}"
            paths.append(write_video(side_by_side(panels, captions), path, fps))
    finally:
        env.close()
    return paths
