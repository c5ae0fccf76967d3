"""Crash-safe checkpoints: write to a temporary name, flush to disk, then rename.

A checkpoint is either one file (``save_state``: a ``torch.save`` dict of model and optimizer
state, step, history...) or a Hugging Face directory (``save_pretrained_atomic``: weights,
config and tokenizer). In both cases the new checkpoint is first written completely under a
temporary name in the same folder, its bytes are flushed with ``fsync``, and only then does a
rename put it in place. A POSIX rename within one filesystem is atomic, so a reader (or a run
that resumes after a crash, ``kill -9`` or Ctrl-C) sees either the previous checkpoint or the
new one, never a half-written file.

Directories cannot be swapped in one rename when the target exists, so
``save_pretrained_atomic`` renames the old directory aside, renames the new one in, then
deletes the old one. If the process dies between those two renames, the previous checkpoint is
still complete under ``.<name>.old``; ``recover_pretrained_dir`` (called by the loaders here)
puts it back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - platforms without directory fds
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Create or replace the file ``path`` atomically: ``write(tmp_path)`` writes a sibling file.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content and the
    temporary file is removed (a killed process can leave a ``.<name>.tmp-*`` file behind, never
    a corrupt ``path``). Returns ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path: expected a file path, got the directory {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # flush the bytes before the rename makes them visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_state(path: str | os.PathLike, state: dict) -> Path:
    """Atomically ``torch.save`` a training-state dict (tensors, state_dicts, numbers, lists).

    Example: ``save_state("build/run.pt", {"model": m.state_dict(), "optimizer": opt.state_dict(),
    "step": 120, "history": history})``.
    """
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a dict written by :func:`save_state` (``weights_only``: no pickled code is run)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no checkpoint file at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"path: {path} does not hold a save_state dict")
    return state


def recover_pretrained_dir(out_dir: str | os.PathLike) -> Path:
    """Finish an interrupted :func:`save_pretrained_atomic`; returns ``out_dir``.

    If ``out_dir`` is missing but its previous version was renamed aside (``.<name>.old``), move
    it back. Left-over temporary directories are removed.
    """
    out_dir = Path(out_dir)
    old = out_dir.parent / f".{out_dir.name}.old"
    if not out_dir.exists() and old.is_dir():
        os.replace(old, out_dir)
    elif old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    if out_dir.parent.is_dir():
        for tmp in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def save_pretrained_atomic(out_dir: str | os.PathLike, *objects) -> Path:
    """Write ``obj.save_pretrained(...)`` of each object (model, tokenizer...) into ``out_dir`` atomically.

    Everything is written into a temporary sibling directory first; ``out_dir`` is replaced only
    once all objects have been saved and flushed. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    recover_pretrained_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    old = out_dir.parent / f".{out_dir.name}.old"
    try:
        for obj in objects:
            obj.save_pretrained(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(out_dir.parent)
    return out_dir
