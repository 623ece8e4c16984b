"""The MuJoCo models of the locomotion environments: Gymnasium's v5 assets.

The single environments and the batched ones build their models here, so both
simulate exactly the same model.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium
import mujoco
import numpy as np

GYM_ASSETS = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets"
"""The folder of the MuJoCo XML files Gymnasium ships."""

FRAME_SKIP = 5
"""Physics steps per control step (``dt = 5 * 0.01 s = 0.05 s`` for both robots)."""

TRACKING_CAMERA: dict[str, float | int] = {"type": 1, "trackbodyid": 1, "distance": 3.0, "elevation": -20.0}
"""The rendering camera of both robots (``default_camera_config``): it follows the torso
(``mjCAMERA_TRACKING`` on body 1), so a running robot stays in the picture."""

PAPER_ANT_TIMESTEP = 0.02
"""The MAML paper's Ant: one physics step of 0.02 s per control step (rllab's model)."""

# the MuJoCo warnings raised when a simulation diverges: MuJoCo then resets it to
# the model's default state, so the state stays finite and only these tell
DIVERGENCE_WARNINGS = (
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
    int(mujoco.mjtWarning.mjWARN_BADQACC),
)


def gym_asset(name: str) -> str:
    """Path of the Gymnasium asset ``name`` (e.g. ``"ant.xml"``)."""
    path = GYM_ASSETS / name
    if not path.is_file():
        raise FileNotFoundError(f"Gymnasium's MuJoCo asset {name!r} is missing: {path}")
    return str(path)


HALF_CHEETAH_TOTAL_MASS = 14.0
"""The total mass ``half_cheetah.xml`` sets with its (deprecated) ``settotalmass`` compiler attribute."""


def half_cheetah_model() -> mujoco.MjModel:
    """Gymnasium's ``half_cheetah.xml`` (HalfCheetah-v5): the same model, without MuJoCo's deprecation warning.

    The file's compiler scales the masses to a total of 14 kg with ``settotalmass``, which
    MuJoCo 4 warns about on every compile; the attribute is left out and the same scaling done
    with ``mj_setTotalmass`` and ``mj_setConst`` (bit-identical masses, inertias and constants).
    """
    text = Path(gym_asset("half_cheetah.xml")).read_text()
    attribute = f' settotalmass="{HALF_CHEETAH_TOTAL_MASS:g}"'
    if attribute not in text:
        raise ValueError(f"Gymnasium's half_cheetah.xml no longer holds {attribute.strip()}; review half_cheetah_model")
    model = mujoco.MjModel.from_xml_string(text.replace(attribute, ""))
    mujoco.mj_setTotalmass(model, HALF_CHEETAH_TOTAL_MASS)
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


def ant_model(paper_dynamics: bool = False) -> mujoco.MjModel:
    """Gymnasium's ``ant.xml`` (Ant-v5) plus an accelerometer in the torso.

    With ``paper_dynamics``, the physics timestep is :data:`PAPER_ANT_TIMESTEP`
    (the MAML paper's rllab Ant, stepped once per control step) instead of 0.01 s.

    The accelerometer changes no physics. It is there because MuJoCo computes the
    external contact forces ``cfrc_ext`` (``mj_rnePostConstraint``) only when a sensor
    needs them; with it, every ``mj_forward`` and the first stage of every
    ``mj_step`` fill ``cfrc_ext``, in a single ``MjData`` and in every simulation of a
    ``mujoco.batch.Batch`` alike. After a step of ``frame_skip`` physics steps,
    ``cfrc_ext`` holds the contact forces at the start of the last physics step.
    """
    spec = mujoco.MjSpec.from_file(gym_asset("ant.xml"))
    spec.body("torso").add_site(name="torso_imu")
    spec.add_sensor(
        name="torso_accelerometer",
        type=mujoco.mjtSensor.mjSENS_ACCELEROMETER,
        objtype=mujoco.mjtObj.mjOBJ_SITE,
        objname="torso_imu",
    )
    if paper_dynamics:
        spec.option.timestep = PAPER_ANT_TIMESTEP
    return spec.compile()


def control_frame_skip(paper_dynamics: bool) -> int:
    """Physics steps per control step: 1 for the paper's simulations (rllab stepped its
    HalfCheetah's 0.01 s and its Ant's 0.02 s physics once per control step), else :data:`FRAME_SKIP`.
    """
    return 1 if paper_dynamics else FRAME_SKIP


def ant_initial_qpos(model: mujoco.MjModel, paper_dynamics: bool) -> np.ndarray:
    """The pose every episode starts from, before the reset noise.

    Ant-v5 starts from the model's ``qpos0``: torso at z = 0.75 and every joint at 0,
    which puts each ankle outside its joint range (30-70 degrees). The paper's Ant
    starts from the crouched pose ``ant.xml`` stores as its ``init_qpos`` numeric
    (torso at z = 0.55, ankles at ±1 rad), which rllab applied and Gymnasium ignores.
    """
    if not paper_dynamics:
        return model.qpos0.copy()
    pose = np.array(model.numeric("init_qpos").data, dtype=np.float64)
    if pose.shape != (model.nq,):
        raise ValueError(f"ant.xml's init_qpos has {pose.size} values, the model {model.nq} positions")
    return pose
