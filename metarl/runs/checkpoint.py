"""Checkpoints: atomic writes, safe (``weights_only``) loads, RNG state helpers.

A checkpoint is a dict of plain data: tensors, numbers, strings, ``None``, lists, tuples
and dicts of those. Numpy generators go in via :func:`rng_state`, torch's global RNG via
:func:`torch_rng_state`. Files live in ``<run_dir>/checkpoints/iter_<NNNNNN>.pt``.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import math
import shutil
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from metarl.runs.folder import CHECKPOINT_DIR, CHECKPOINT_NAME
from metarl.system.files import write_atomic_with

_FORMAT = "metarl-checkpoint"
_VERSION = 2  # 2: with a SHA-256 checksum of the state; version 1 files (no checksum) still load
_READABLE_VERSIONS = (1, 2)
_ATOMS = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)
MAX_CHECKPOINT_BYTES = 2**31
"""The largest checkpoint file read (a 100x100 locomotion policy's is under 1 MB)."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, truncated, unsafe or not a metarl checkpoint."""


def _check_plain(obj: Any, where: str) -> None:
    """Raise ``CheckpointError`` naming the first value ``weights_only`` loading would reject."""
    if isinstance(obj, torch.Tensor) or type(obj) in _ATOMS:
        return
    if type(obj) in (dict, collections.OrderedDict):
        for key, value in obj.items():
            if type(key) not in _ATOMS:
                raise CheckpointError(f"{where}: key {key!r} of type {type(key).__name__} cannot be saved")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    hint = ""
    if isinstance(obj, np.generic | np.ndarray):
        hint = " (convert with .item()/.tolist() or torch.as_tensor)"
    kind = f"{type(obj).__module__}.{type(obj).__name__}"
    raise CheckpointError(f"{where}: {kind} cannot be saved safely{hint}")


def _digest(obj: Any, sha: Any) -> None:
    """Feed ``obj`` (plain checkpoint data) into ``sha`` in a canonical order: types, shapes and bytes."""
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        sha.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.numel():
            sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        sha.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            sha.update(repr(key).encode())
            _digest(obj[key], sha)
    elif isinstance(obj, list | tuple):
        sha.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for value in obj:
            _digest(value, sha)
    else:
        sha.update(f"A{type(obj).__name__}:{obj!r}".encode())


def state_checksum(state: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's state: every tensor's dtype, shape and bytes, every value and key."""
    sha = hashlib.sha256()
    _digest(state, sha)
    return sha.hexdigest()


def _first_nonfinite(obj: Any, where: str) -> str | None:
    """The key path of the first floating tensor or float in ``obj`` holding NaN or infinity, if any."""
    if isinstance(obj, torch.Tensor):
        return where if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else None
    if isinstance(obj, float):
        return where if not math.isfinite(obj) else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    for key, value in items:
        found = _first_nonfinite(value, f"{where}[{key!r}]")
        if found:
            return found
    return None


def _fallback_hint(path: Path) -> str:
    """``; delete it to resume from the previous checkpoint, NAME`` when ``path``'s folder holds an older one."""
    match = CHECKPOINT_NAME.match(path.name)
    if not match:
        return ""
    older = [p for i, p in list_checkpoints(path.parent.parent) if i < int(match.group(1)) and p.parent == path.parent]
    return f"; delete it to resume from the previous checkpoint, {older[-1].name}" if older else ""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    A crash mid-write leaves any previous file at ``path`` intact. Raises
    ``CheckpointError`` (before writing) if ``state`` holds a type a safe load rejects.
    """
    path = Path(path)
    _check_plain(state, "state")
    checksum = state_checksum(state)

    def write(f: BinaryIO) -> None:
        try:
            torch.save({"format": _FORMAT, "version": _VERSION, "checksum": checksum, "state": state}, f)
        except RuntimeError as exc:  # torch reports a failed write ("enforce fail at inline_container.cc")
            full = shutil.disk_usage(path.parent).free < 64 * 2**20
            raise OSError(
                errno.ENOSPC if full else errno.EIO,
                "No space left on device" if full else f"writing failed ({str(exc).splitlines()[0]})",
                str(path),
            ) from exc

    return write_atomic_with(path, write)


def _check_archive(path: Path, size: int) -> None:
    """Refuse, before anything is unpickled, a file that is not a plain torch archive of bounded size.

    torch writes every entry uncompressed; a compressed entry could expand far beyond the file.
    """
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is {size:,} bytes, more than the {MAX_CHECKPOINT_BYTES:,} a metarl checkpoint "
            "may have"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({size} bytes): not a torch archive ({exc})"
            + _fallback_hint(path)
        ) from exc
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds compressed entries ({packed[0]}{', ...' if len(packed) > 1 else ''}), "
            "which torch never writes"
        )
    if sum(e.file_size for e in entries) > size:
        raise CheckpointError(f"checkpoint {str(path)!r} declares more data than the file holds")


def _check_tensor_extents(obj: Any, where: str, budget: list[int]) -> None:
    """Refuse a tensor that reads beyond its storage or is not laid out densely, before any is read.

    A saved view may declare any size over a small storage (stride 0 repeats one element):
    copying it for the checksum would allocate that size. Only dense, contiguous tensors
    within their stored bytes pass, and all of them together (views of one storage count each
    time) within ``budget[0]`` bytes.
    """
    if isinstance(obj, torch.Tensor):
        need = obj.numel() * obj.element_size()
        stored = obj.untyped_storage().nbytes() - obj.storage_offset() * obj.element_size()
        if not obj.is_contiguous() or need > stored:
            raise CheckpointError(
                f"{where}: a tensor of shape {tuple(obj.shape)} and strides {obj.stride()} over {stored:,} stored "
                "bytes (a metarl checkpoint holds only dense tensors within their storage)"
            )
        budget[0] -= need
        if budget[0] < 0:
            raise CheckpointError(f"{where}: the tensors declare more bytes than the file holds")
        return
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    for key, value in items:
        _check_tensor_extents(value, f"{where}[{key!r}]", budget)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` without executing code (CPU tensors).

    Untrusted files are bounded before anything is read into memory: the file's size, its
    archive's entries (uncompressed, as torch writes them), and every tensor's extent (dense,
    within its stored bytes); the tensors are memory-mapped until the checksum reads them.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {str(path)!r}")
    size = path.stat().st_size
    _check_archive(path, size)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        text = str(exc)
        weights_only_refused = "weights only load failed" in text.lower()
        if weights_only_refused and "GLOBAL" in text:  # a class or function to import: code would run
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds objects that cannot be loaded safely (weights_only)"
            ) from exc
        detail = "unreadable pickle data" if weights_only_refused else (text.splitlines() or [""])[0]
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({size} bytes): {type(exc).__name__}: {detail}"
            + _fallback_hint(path)
        ) from exc
    if not (isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(data.get("state"), dict)):
        raise CheckpointError(f"{str(path)!r} is not a metarl checkpoint")
    if data.get("version") not in _READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {data.get('version')!r}; "
            f"this metarl reads versions {', '.join(map(str, _READABLE_VERSIONS))}"
        )
    state = data["state"]
    _check_tensor_extents(state, f"checkpoint {str(path)!r}", [16 * size])
    if data["version"] >= 2 and data.get("checksum") != state_checksum(state):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: its contents do not match the checksum written with them"
            + _fallback_hint(path)
        )
    nonfinite = _first_nonfinite(state.get("learner", {}), "learner")
    if nonfinite:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds non-finite values (NaN or infinity) in {nonfinite}" + _fallback_hint(path)
        )
    return state


def checkpoint_path(run_dir: str | Path, iteration: int) -> Path:
    """Where the checkpoint of ``iteration`` lives: ``<run_dir>/checkpoints/iter_<NNNNNN>.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"iter_{iteration:06d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every checkpoint in ``run_dir``, oldest first (temp files ignored)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_NAME.match(p.name)) and p.is_file()]
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest iteration in ``run_dir``, or ``None`` if there is none."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def remove_orphaned_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete the ``.iter_*.pt.*.tmp`` files a killed checkpoint write left in ``run_dir``; returns them.

    Call it only while holding the run folder's lock (:mod:`metarl.runs.lock`): no other
    writer can be mid-write then.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    orphans = sorted(folder.glob(".iter_*.pt.*.tmp")) if folder.is_dir() else []
    for p in orphans:
        p.unlink(missing_ok=True)
    return orphans


def prune_checkpoints(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; returns the deleted paths."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    doomed = [p for _, p in list_checkpoints(run_dir)[:-keep]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The bit-generator state of ``rng`` as plain data (arrays as lists) for a checkpoint."""
    return _plain(rng.bit_generator.state)


def restore_rng(state: dict[str, Any], into: np.random.Generator | None = None) -> np.random.Generator:
    """A generator in ``state`` (from :func:`rng_state`); with ``into``, set that one in place."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    bit_gen_cls = getattr(np.random, name, None) if isinstance(name, str) else None
    if not (isinstance(bit_gen_cls, type) and issubclass(bit_gen_cls, np.random.BitGenerator)):
        raise CheckpointError(f"not a numpy bit-generator state (bit_generator={name!r})")
    rng = into if into is not None else np.random.Generator(bit_gen_cls())
    if type(rng.bit_generator) is not bit_gen_cls:
        have = type(rng.bit_generator).__name__
        raise CheckpointError(f"cannot restore a {name} state into a {have} generator")
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"invalid {name} generator state: {exc}") from exc
    return rng


def torch_rng_state() -> torch.Tensor:
    """Torch's global CPU RNG state (a uint8 tensor)."""
    return torch.get_rng_state()


def restore_torch_rng(state: torch.Tensor) -> None:
    """Set torch's global CPU RNG from :func:`torch_rng_state` output."""
    if not (isinstance(state, torch.Tensor) and state.dtype == torch.uint8):
        raise CheckpointError("torch RNG state must be a uint8 tensor")
    torch.set_rng_state(state)


__all__ = [
    "CheckpointError",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "remove_orphaned_temp_files",
    "restore_rng",
    "restore_torch_rng",
    "rng_state",
    "save_checkpoint",
    "state_checksum",
    "torch_rng_state",
]
