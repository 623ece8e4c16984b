"""Meta-World on MuJoCo 4: the one patch metaworld 3.1.1 needs, applied at run time.

metaworld 3.1.1 pins ``mujoco==3.3.0``. Against MuJoCo 4 exactly one of its calls breaks:
:meth:`metaworld.sawyer_xyz_env.SawyerMocapBase.reset_mocap_welds`, called by every
environment's constructor, assigns an 11-value row (anchor, relative position, relative
quaternion, torque scale) to a row of ``model.eq_data``, and MuJoCo 4's rows hold
``mjNEQDATA = 12`` values, so the assignment raises ``ValueError``. :func:`patch_metaworld`
replaces the method by one that writes the same 11 values into the first 11 entries of each
weld's row and keeps the 12th as MuJoCo compiled it (it does not change the weld's dynamics:
``tests/envs/test_meta_world.py`` checks that). On MuJoCo 3.3 the replacement writes what
the original wrote.

Everything else metaworld reads of MuJoCo's API is unchanged in MuJoCo 4: contacts'
``geom1``, ``geom2`` and ``efc_address`` and ``data.efc_force`` (the tests compare
``touching_object`` with MuJoCo's own contact force). What MuJoCo's physics changed between
3.3 and 4 is measured, not patched: ``scripts/meta_world_experts.py`` and docs/meta-world.md.

One patch is for speed, not compatibility: metaworld's ``touching_object`` (called by the
grasping environments' rewards every step) walks ``data.contact`` in Python, one wrapper
object per contact, twice; on push-v3 that is about a fifth of a step.
:func:`touching_object` selects the same contacts from the contact arrays and sums the same
forces in the same order, so its answer is identical (tested over expert episodes).

Another is also for speed: 22 environments build their observation's object quaternion
with ``scipy.spatial.transform.Rotation.from_matrix(xmat).as_quat()`` every step, about
0.2 ms a call, which is as much as the physics step itself. :class:`MatrixQuaternion`
stands in for ``Rotation`` in those modules: for one proper orthonormal 3×3 matrix (every
``xmat`` MuJoCo computes) it does scipy's own conversion (the largest of the diagonal and
the trace picks the formula) in plain floats, bit for bit the same quaternion (tested on
random rotations of every branch and over expert episodes); any other input goes to scipy.

This module imports only numpy, mujoco and metaworld, so that the reference environment with
MuJoCo 3.3.0 (``scripts/meta_world_reference_env.sh``) can load it by path.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from typing import Any

import mujoco
import numpy as np

WELD_ROW = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])
"""metaworld's weld row for the mocap that drives the hand: anchor 0, relative pose 0 with the
quaternion (−1, 0, 0, 0), torque scale 5."""


REPLACED: dict[str, Any] = {}
"""metaworld's own functions that :func:`patch_metaworld` replaced for speed (kept for the tests)."""


def reset_mocap_welds(env: Any) -> None:
    """Write :data:`WELD_ROW` into each weld, as metaworld's ``reset_mocap_welds`` does, for any ``mjNEQDATA`` ≥ 11.

    Args:
        env: A metaworld ``SawyerMocapBase`` environment (its ``model``).
    """
    model = env.model
    if model.nmocap > 0 and model.eq_data is not None:
        welds = np.flatnonzero(model.eq_type == mujoco.mjtEq.mjEQ_WELD)
        model.eq_data[welds, : len(WELD_ROW)] = WELD_ROW


def _pad_force(data: Any, pad: int, geom1: np.ndarray, geom2: np.ndarray, address: np.ndarray, obj: int) -> float:
    """Sum of ``efc_force`` at the contacts between geoms ``pad`` and ``obj``, in contact order (metaworld's sum)."""
    between = ((geom1 == pad) | (geom2 == pad)) & ((geom1 == obj) | (geom2 == obj))
    return sum(data.efc_force[a] for a in address[between])


def touching_object(env: Any, object_geom_id: int) -> bool:
    """Whether both finger pads press on the object: metaworld's ``touching_object``, from the contact arrays.

    Args:
        env: A metaworld ``SawyerXYZEnv`` (its ``data``).
        object_geom_id: The object's geom id.
    """
    data = env.data
    contact = data.contact
    geom1, geom2, address = contact.geom1, contact.geom2, contact.efc_address
    left = _pad_force(data, data.geom("leftpad_geom").id, geom1, geom2, address, object_geom_id)
    right = _pad_force(data, data.geom("rightpad_geom").id, geom1, geom2, address, object_geom_id)
    return bool(0 < left and 0 < right)


def matrix_quaternion(matrix: Any) -> np.ndarray | None:
    """The unit quaternion ``(x, y, z, w)`` of a rotation matrix, as scipy's ``from_matrix`` gives it.

    ``None`` unless ``matrix`` is one 3×3 matrix that scipy takes as orthogonal (its Gram matrix
    within scipy's tolerance of the identity) with a positive determinant: scipy then
    orthogonalises it first, or raises, and the caller should ask scipy.

    Args:
        matrix: A 3×3 array.
    """
    m = np.asarray(matrix)
    if m.shape != (3, 3):
        return None
    (a, b, c), (d, e, f), (g, h, i) = m.tolist()
    gram = (
        (a * a + b * b + c * c, a * d + b * e + c * f, a * g + b * h + c * i),
        (d * a + e * b + f * c, d * d + e * e + f * f, d * g + e * h + f * i),
        (g * a + h * b + i * c, g * d + h * e + i * f, g * g + h * h + i * i),
    )
    for r in range(3):
        for col in range(3):
            target = 1.0 if r == col else 0.0
            if not abs(gram[r][col] - target) <= 1e-12 + 1e-5 * target:  # scipy's isclose(atol=1e-12)
                return None
    if a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g) <= 0:
        return None
    trace = a + e + i
    largest = max(range(4), key=(a, e, i, trace).__getitem__)  # the first of equals, as argmax
    if largest == 3:
        q = (h - f, c - g, d - b, 1 + trace)
    elif largest == 0:
        q = (1 - trace + 2 * a, d + b, g + c, h - f)
    elif largest == 1:
        q = (d + b, 1 - trace + 2 * e, h + f, c - g)
    else:
        q = (g + c, h + f, 1 - trace + 2 * i, d - b)
    norm = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    return np.array([x / norm for x in q])


class _Quaternion:
    """What ``MatrixQuaternion.from_matrix`` returns: ``as_quat()`` of a quaternion computed once."""

    def __init__(self, quat: np.ndarray):
        self._quat = quat

    def as_quat(self) -> np.ndarray:
        return self._quat.copy()


class MatrixQuaternion:
    """Stands in for scipy's ``Rotation`` in metaworld's environment modules (see the module docstring)."""

    @staticmethod
    def from_matrix(matrix: Any, **kwargs: Any) -> Any:
        """:func:`matrix_quaternion` of one rotation matrix; scipy's ``Rotation.from_matrix`` for anything else."""
        quat = None if kwargs else matrix_quaternion(matrix)
        if quat is None:
            from scipy.spatial.transform import Rotation

            return Rotation.from_matrix(matrix, **kwargs)
        return _Quaternion(quat)


def _env_modules_with_rotation() -> list[Any]:
    """The environment modules of metaworld that import scipy's ``Rotation`` (or hold the stand-in already)."""
    import metaworld.envs

    modules = []
    for info in pkgutil.iter_modules(metaworld.envs.__path__, "metaworld.envs."):
        module = importlib.import_module(info.name)
        if hasattr(module, "Rotation"):
            modules.append(module)
    return modules


def patch_metaworld(fast_contacts: bool = True) -> None:
    """Make metaworld 3.1.1 run on MuJoCo 4 (idempotent; safe on MuJoCo 3.3).

    Args:
        fast_contacts: Also replace ``touching_object`` by :func:`touching_object` and scipy's
            ``Rotation`` in the environment modules by :class:`MatrixQuaternion` (same answers, faster).
    """
    from metaworld.sawyer_xyz_env import SawyerMocapBase, SawyerXYZEnv

    SawyerMocapBase.reset_mocap_welds = reset_mocap_welds  # type: ignore[method-assign, assignment]
    if SawyerXYZEnv.touching_object is not touching_object:
        REPLACED["touching_object"] = SawyerXYZEnv.touching_object
    if fast_contacts:
        SawyerXYZEnv.touching_object = touching_object  # type: ignore[method-assign, assignment]
    for module in _env_modules_with_rotation():
        if module.Rotation is not MatrixQuaternion:
            REPLACED.setdefault("Rotation", module.Rotation)
        if fast_contacts:
            module.Rotation = MatrixQuaternion
