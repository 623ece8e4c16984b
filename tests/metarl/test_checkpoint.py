"""Checkpoints: round trip incl. RNG states, atomic writes, clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import metarl.runs.checkpoint as ckpt
from metarl.runs.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng,
    restore_torch_rng,
    rng_state,
    save_checkpoint,
    state_checksum,
    torch_rng_state,
)


def _state(iteration: int = 3) -> dict:
    torch.manual_seed(0)
    return {
        "iteration": iteration,
        "params": {"w": torch.randn(4, 3), "b": torch.zeros(3, dtype=torch.float64)},
        "config": {"fast_lr": 0.1, "hidden_sizes": [64, 64], "env_id": "metarl/Navigation2D-v0"},
        "metrics": [1.5, float("inf"), None],
        "shape": (4, 3),
    }


def test_round_trip_equals(tmp_path: Path):
    state = _state()
    path = save_checkpoint(checkpoint_path(tmp_path, 3), state)
    assert path == tmp_path / "checkpoints" / "iter_000003.pt"
    loaded = load_checkpoint(path)
    assert set(loaded) == set(state)
    assert loaded["iteration"] == 3 and loaded["config"] == state["config"]
    assert loaded["metrics"] == [1.5, float("inf"), None] and loaded["shape"] == (4, 3)
    for k in ("w", "b"):
        assert torch.equal(loaded["params"][k], state["params"][k])
        assert loaded["params"][k].dtype == state["params"][k].dtype


@pytest.mark.parametrize("bit_generator", ["PCG64", "MT19937", "SFC64", "Philox", "PCG64DXSM"])
def test_numpy_rng_state_reproduces_draws(tmp_path: Path, bit_generator: str):
    rng = np.random.Generator(getattr(np.random, bit_generator)(1234))
    rng.normal(size=17)  # advance to a non-initial state
    save_checkpoint(tmp_path / "c.pt", {"rng": rng_state(rng)})
    expected = rng.normal(size=50)
    restored = restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"])
    np.testing.assert_array_equal(restored.normal(size=50), expected)
    # restoring in place into an existing generator of the same kind works too
    other = np.random.Generator(getattr(np.random, bit_generator)(0))
    restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"], into=other)
    np.testing.assert_array_equal(other.normal(size=50), expected)


def test_torch_rng_state_reproduces_draws(tmp_path: Path):
    torch.manual_seed(5)
    torch.rand(3)
    save_checkpoint(tmp_path / "c.pt", {"torch_rng": torch_rng_state()})
    expected = torch.randn(20)
    torch.manual_seed(999)
    restore_torch_rng(load_checkpoint(tmp_path / "c.pt")["torch_rng"])
    assert torch.equal(torch.randn(20), expected)


def test_restore_rng_rejects_garbage():
    with pytest.raises(CheckpointError, match="bit-generator"):
        restore_rng({"bit_generator": "NotAGenerator"})
    with pytest.raises(CheckpointError, match="cannot restore a PCG64"):
        restore_rng(rng_state(np.random.default_rng(0)), into=np.random.Generator(np.random.MT19937(0)))


def test_missing_file(tmp_path: Path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file(tmp_path: Path):
    good = save_checkpoint(tmp_path / "good.pt", _state())
    data = good.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        (tmp_path / "bad.pt").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"corrupt or truncated"):
            load_checkpoint(tmp_path / "bad.pt")


def test_corrupt_file(tmp_path: Path):
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "junk.pt")


def test_foreign_and_unsafe_files(tmp_path: Path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a metarl checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save({"format": "metarl-checkpoint", "version": 1, "state": {"x": np.zeros(3)}}, tmp_path / "np.pt")
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "np.pt")


def test_unsafe_state_is_refused_before_writing(tmp_path: Path):
    with pytest.raises(CheckpointError, match=r"state\['rng'\]\['key'\]: numpy.ndarray"):
        save_checkpoint(tmp_path / "c.pt", {"rng": {"key": np.zeros(3)}})
    with pytest.raises(CheckpointError, match=r"state\['lr'\]: numpy.float64"):
        save_checkpoint(tmp_path / "c.pt", {"lr": np.float64(0.1)})
    assert not list(tmp_path.iterdir())


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"iteration": 1, "w": torch.ones(3)})
    before = path.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"iteration": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]  # temp file cleaned up


def test_latest_list_and_prune(tmp_path: Path):
    assert latest_checkpoint(tmp_path) is None
    for it in (2, 10, 7):
        save_checkpoint(checkpoint_path(tmp_path, it), {"iteration": it})
    (tmp_path / "checkpoints" / ".iter_000011.pt.abc.tmp").write_bytes(b"x")  # leftover temp file
    assert [it for it, _ in list_checkpoints(tmp_path)] == [2, 7, 10]
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 10)
    assert load_checkpoint(latest_checkpoint(tmp_path))["iteration"] == 10
    deleted = prune_checkpoints(tmp_path, keep=2)
    assert deleted == [checkpoint_path(tmp_path, 2)]
    assert [it for it, _ in list_checkpoints(tmp_path)] == [7, 10]


def _flip_a_bit_of(path: Path, pattern: bytes) -> None:
    """Flip the lowest bit of the first byte of ``pattern`` where it occurs in ``path``."""
    data = bytearray(path.read_bytes())
    at = data.find(pattern)
    assert at >= 0, "pattern not in the file"
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_tensor_data_is_refused_naming_the_previous_checkpoint(tmp_path: Path):
    weights = torch.full((64,), 1.2345678)
    state = {"learner": {"policy": {"w0": weights}}, "iteration": 2}
    save_checkpoint(checkpoint_path(tmp_path, 1), {**state, "iteration": 1})
    path = save_checkpoint(checkpoint_path(tmp_path, 2), state)
    assert torch.equal(load_checkpoint(path)["learner"]["policy"]["w0"], weights)
    _flip_a_bit_of(path, weights[:4].numpy().tobytes())
    raw = torch.load(path, weights_only=True)["state"]["learner"]["policy"]["w0"]
    assert not torch.equal(raw, weights)  # torch itself loads the damaged tensor without complaint
    with pytest.raises(CheckpointError, match=r"is corrupt: its contents do not match the checksum") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "delete it to resume from the previous checkpoint, iter_000001.pt" in str(info.value)


def test_the_checksum_covers_values_keys_dtypes_and_shapes():
    base = {"a": torch.zeros(2, 3), "b": [1, 2.0, "x"], "c": None}
    reference = state_checksum(base)
    assert state_checksum({"c": None, "b": [1, 2.0, "x"], "a": torch.zeros(2, 3)}) == reference  # key order
    for changed in (
        {**base, "a": torch.zeros(3, 2)},
        {**base, "a": torch.zeros(2, 3, dtype=torch.float64)},
        {**base, "b": [1, 2.0, "y"]},
        {**base, "b": (1, 2.0, "x")},
        {"a": base["a"], "b": base["b"]},
        {**base, "a": torch.tensor([[0.0, 0, 0], [0, 0, 1e-30]])},
    ):
        assert state_checksum(changed) != reference


def test_non_finite_parameters_are_a_clear_error(tmp_path: Path):
    path = save_checkpoint(tmp_path / "nan.pt", {"learner": {"policy": {"w0": torch.tensor([0.0, float("nan")])}}})
    with pytest.raises(CheckpointError, match=r"non-finite values \(NaN or infinity\) in learner\['policy'\]\['w0'\]"):
        load_checkpoint(path)


def test_checkpoints_of_format_version_1_still_load(tmp_path: Path):
    state = {"learner": {"policy": {"w0": torch.ones(3)}}, "iteration": 4}
    torch.save({"format": "metarl-checkpoint", "version": 1, "state": state}, tmp_path / "v1.pt")
    assert load_checkpoint(tmp_path / "v1.pt")["iteration"] == 4
