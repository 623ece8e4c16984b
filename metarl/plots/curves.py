"""Drawing curves that tell the truth: intervals stopped at the return bounds, an axis that
does not stretch noise into a slope, coinciding curves offset and named, flat ones noted.

:func:`draw_curves` draws :class:`Curve` s on a matplotlib axes and returns the notes a
reader needs; :mod:`metarl.plots.figures` (comparison figures) and :mod:`metarl.plots.training_curve`
(a run's own curve) both draw through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes

from metarl.evaluation.results import AdaptationResults

MIN_RELATIVE_SPAN = 0.05
"""The y-axis spans at least this fraction of the largest |value| drawn (and at least
``MIN_ABSOLUTE_SPAN``): curves that differ by float noise are not stretched into a slope."""
MIN_ABSOLUTE_SPAN = 1e-3
COINCIDE_FRACTION = 0.005
"""Two curves closer than this fraction of the y-axis at every x are said to coincide."""
DODGE = 0.06
"""x offset (in steps) between the markers of coinciding adaptation curves."""


@dataclass
class Curve:
    """One line to draw: its values, its interval (NaN: none) and how it is styled."""

    label: str
    x: np.ndarray
    mean: np.ndarray
    half: np.ndarray
    color: str
    linestyle: str = "-"
    marker: str | None = None
    band: bool = True


def results_return_bounds(results: Sequence[AdaptationResults]) -> tuple[float, float]:
    """The tightest return bounds the results record (``settings["return_bounds"]``)."""
    low, high = -np.inf, np.inf
    for run in results:
        bounds = run.settings.get("return_bounds") or (None, None)
        low = max(low, -np.inf if bounds[0] is None else float(bounds[0]))
        high = min(high, np.inf if bounds[1] is None else float(bounds[1]))
    return low, high


def _interval(curve: Curve, bounds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The curve's band, never past the bounds of a return."""
    return np.clip(curve.mean - curve.half, *bounds), np.clip(curve.mean + curve.half, *bounds)


def y_limits(curves: Sequence[Curve], bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float]:
    """Axis limits holding every curve and band, spanning at least :data:`MIN_RELATIVE_SPAN`.

    Args:
        curves: What will be drawn.
        bounds: Bounds of the return: the axis stops a margin past them.
    """
    lows, highs = [], []
    for curve in curves:
        low, high = _interval(curve, bounds)
        lows.append(np.fmin(low, curve.mean))
        highs.append(np.fmax(high, curve.mean))
    lo, hi = float(np.nanmin(np.concatenate(lows))), float(np.nanmax(np.concatenate(highs)))
    span = max(hi - lo, MIN_RELATIVE_SPAN * max(abs(lo), abs(hi)), MIN_ABSOLUTE_SPAN)
    middle = (lo + hi) / 2 if hi - lo < span else None
    if middle is not None:
        lo, hi = middle - span / 2, middle + span / 2
        if lo < bounds[0] or hi > bounds[1]:  # keep the widened span inside the bounds
            shift = bounds[0] - lo if lo < bounds[0] else bounds[1] - hi
            lo, hi = lo + shift, hi + shift
    pad = 0.06 * (hi - lo)
    return lo - pad, hi + pad


def coinciding(curves: Sequence[Curve], y_range: float) -> list[list[int]]:
    """Groups (indices, two or more) of curves equal within :data:`COINCIDE_FRACTION` of ``y_range``."""
    tol = COINCIDE_FRACTION * y_range
    groups: list[list[int]] = []
    placed: set[int] = set()
    for i, a in enumerate(curves):
        if i in placed:
            continue
        group = [i]
        for j in range(i + 1, len(curves)):
            b = curves[j]
            if (
                j not in placed
                and a.x.shape == b.x.shape
                and np.allclose(a.x, b.x)
                and (np.nanmax(np.abs(a.mean - b.mean)) <= tol)
            ):
                group.append(j)
        if len(group) > 1:
            groups.append(group)
            placed.update(group)
    return groups


def within_noise(curve: Curve) -> bool:
    """Whether every step's 95% interval overlaps step 0's (so no step is told apart from it)."""
    if curve.mean.size < 2 or not np.isfinite(curve.half).all():
        return False
    return bool(np.all(np.abs(curve.mean - curve.mean[0]) < curve.half + curve.half[0]))


def draw_curves(
    ax: Axes, curves: Sequence[Curve], bounds: tuple[float, float] = (-np.inf, np.inf), dodge: float = 0.0
) -> list[str]:
    """Draw ``curves`` with their bands (clipped to ``bounds``) and truthful limits; return notes.

    Coinciding curves are named in each other's legend labels and, with ``dodge``, their
    markers are offset along x so none hides another. The notes say what the reader
    could otherwise misread (coinciding lines).

    Args:
        ax: The axes to draw on.
        curves: The curves with their bands.
        bounds: The range the returns can take (bands are clipped to it).
        dodge: The x offset between coinciding curves' markers.
    """
    lo, hi = y_limits(curves, bounds)
    notes = []
    offsets = np.zeros(len(curves))
    labels = [c.label for c in curves]
    for group in coinciding(curves, hi - lo):
        for k, index in enumerate(group):
            others = [curves[j].label for j in group if j != index]
            labels[index] = f"{curves[index].label} (= {', '.join(others)})"
            offsets[index] = (k - (len(group) - 1) / 2) * dodge
        notes.append(f"lines coincide: {', '.join(curves[j].label for j in group)}")
    for curve, label, offset in zip(curves, labels, offsets, strict=True):
        x = curve.x + offset
        ax.plot(x, curve.mean, color=curve.color, linestyle=curve.linestyle, marker=curve.marker, label=label)
        if curve.band and np.isfinite(curve.half).any():
            low, high = _interval(curve, bounds)
            ax.fill_between(x, low, high, color=curve.color, alpha=0.2, linewidth=0)
    for bound in bounds:
        if np.isfinite(bound) and lo < bound < hi:
            ax.axhline(bound, color="0.3", linewidth=0.8, linestyle=":")
    ax.set_ylim(lo, hi)
    return notes


__all__ = [
    "COINCIDE_FRACTION",
    "DODGE",
    "MIN_ABSOLUTE_SPAN",
    "MIN_RELATIVE_SPAN",
    "Curve",
    "coinciding",
    "draw_curves",
    "results_return_bounds",
    "within_noise",
    "y_limits",
]
