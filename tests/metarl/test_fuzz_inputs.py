"""Property-based fuzzing of the two loaders of untrusted input: the config loader and the checkpoint loader.

Whatever the input, the result is a valid config (checkpoint state) or a ConfigError
(CheckpointError) — never another exception — and loading stays within a bounded amount
of memory.
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarl.config import FIELD_NAMES, ConfigError, TrainConfig, load_config
from metarl.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

MEMORY_BOUND = 64 * 2**20
"""Bytes a single load may allocate (Python's allocator, numpy's and torch's CPU allocations)."""
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _bounded(load):
    tracemalloc.start()
    try:
        return load()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_BOUND, f"a load allocated {peak:,} bytes"


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=30,
)
configs = st.dictionaries(st.sampled_from([*FIELD_NAMES, "hidden-sizes", "unknown_key"]), values, max_size=8)


@pytest.mark.slow
@FUZZ
@given(data=configs)
def test_any_yaml_mapping_is_a_config_or_a_config_error(tmp_path: Path, data: dict):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        cfg = _bounded(lambda: load_config(path))
    except ConfigError as exc:
        assert len(str(exc)) < 2000
    else:
        assert isinstance(cfg, TrainConfig)


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=400),
        st.binary(max_size=400).map(lambda b: b.decode("latin-1")),
        st.integers(1, 60).map(lambda n: "a: " + "[" * n + "]" * n),
        st.integers(1, 30).map(lambda n: "env_kwargs: &a {x: [1]}\n" + "b: *a\n" * n),
    )
)
@pytest.mark.slow
def test_any_text_is_a_config_or_a_config_error(tmp_path: Path, text: str):
    path = tmp_path / "c.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    try:
        _bounded(lambda: load_config(path))
    except ConfigError as exc:
        assert len(str(exc)) < 2000


@pytest.mark.slow
@FUZZ
@given(tokens=st.lists(st.one_of(st.sampled_from([f"--{n}" for n in FIELD_NAMES]), st.text(max_size=40)), max_size=6))
def test_any_command_line_is_a_config_or_a_config_error(tokens: list[str]):
    try:
        _bounded(lambda: load_config("2d-navigation", tokens))
    except ConfigError as exc:
        assert len(str(exc)) < 2000


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "iter_000001.pt"
    policy = {"w": torch.randn(8, 4), "b": torch.zeros(4)}
    state = {
        "iteration": 1,
        "config": {"seed": 1},
        "learner": {"policy": policy},
        "rng": {"torch": torch.get_rng_state()},
    }
    save_checkpoint(path, state)
    return path.read_bytes()


def _load(tmp_path: Path, data: bytes):
    path = tmp_path / "iter_000002.pt"
    path.write_bytes(data)
    try:
        return _bounded(lambda: load_checkpoint(path))
    except CheckpointError as exc:
        assert len(str(exc)) < 2000
        return None


@FUZZ
@given(
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
@pytest.mark.slow
def test_a_damaged_checkpoint_is_a_checkpoint_error(tmp_path: Path, good_checkpoint: bytes, edits, cut):
    data = bytearray(good_checkpoint)
    for where, byte in edits:
        data[int(where * len(data))] = byte
    if cut is not None:
        data = data[: int(cut * len(data))]
    state = _load(tmp_path, bytes(data))
    if state is not None:  # a change the checksum does not cover (zip metadata) leaves the state intact
        original = torch.load(io.BytesIO(good_checkpoint), weights_only=True)["state"]
        assert torch.equal(state["learner"]["policy"]["w"], original["learner"]["policy"]["w"])


@FUZZ
@given(
    shape=st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
    stride=st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
    offset=st.integers(0, 100),
)
def test_a_tensor_view_beyond_its_storage_is_a_checkpoint_error(tmp_path: Path, shape, stride, offset):
    n = min(len(shape), len(stride))
    storage = torch.zeros(128)
    try:
        view = storage.as_strided(shape[:n], stride[:n], min(offset, 127))
    except RuntimeError:
        return  # torch itself refuses this view
    buffer = io.BytesIO()
    torch.save({"format": "metarl-checkpoint", "version": 1, "state": {"learner": {"w": view}}}, buffer)
    state = _load(tmp_path, buffer.getvalue())
    if state is not None:
        w = state["learner"]["w"]
        assert w.is_contiguous() and w.numel() <= 128


def test_an_entry_compressed_to_look_small_is_refused(tmp_path: Path, good_checkpoint: bytes):
    src = io.BytesIO(good_checkpoint)
    out = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            payload = zin.read(info.filename)
            if info.filename.endswith("data/0"):
                payload += bytes(50 * 2**20)  # 50 MB of zeros: about 50 kB compressed
            zout.writestr(info.filename, payload)
    assert len(out.getvalue()) < 2**20
    assert _load(tmp_path, out.getvalue()) is None
