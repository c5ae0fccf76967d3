"""Atomic checkpoints: an interrupted save never leaves a corrupt checkpoint behind."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file

from rlhf_edu.checkpoint import (atomic_write, load_state, recover_pretrained_dir, save_pretrained_atomic,
                                 save_state)
from rlhf_edu.data import lm_documents, load_splits
from rlhf_edu.pretrain import PretrainConfig, pretrain


def test_save_state_round_trips(tmp_path):
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "step": 7, "history": {"loss": [1.5, 0.5]}}
    save_state(tmp_path / "s.pt", state)
    back = load_state(tmp_path / "s.pt")
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["step"] == 7 and back["history"] == {"loss": [1.5, 0.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]  # no temporary file left


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_the_previous_file(tmp_path, exc):
    path = tmp_path / "ckpt.pt"
    save_state(path, {"step": 1, "w": torch.ones(3)})
    before = path.read_bytes()

    def half_write(tmp):
        tmp.write_bytes(before[: len(before) // 2])  # a torn write, then the crash
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(path, half_write)
    assert path.read_bytes() == before
    assert load_state(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_kill_9_during_saves_never_corrupts(tmp_path):
    """A process saving 2 MB states in a loop is SIGKILLed; the file on disk always loads whole."""
    path = tmp_path / "ckpt.pt"
    script = textwrap.dedent(f"""
        import torch
        from rlhf_edu.checkpoint import save_state
        for i in range(10**6):
            save_state({str(path)!r}, {{"step": i, "w": torch.full((512, 1024), float(i))}})
            if i == 0:
                print("saved", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saved"
        time.sleep(0.7)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    state = load_state(path)
    assert state["step"] >= 0
    assert torch.equal(state["w"], torch.full((512, 1024), float(state["step"])))


class _Saver:
    def __init__(self, fail=False):
        self.fail = fail

    def save_pretrained(self, d):
        (d / "weights.bin").write_bytes(b"new" * 1000)
        if self.fail:
            raise OSError("no space left on device")
        (d / "config.json").write_text("{}")


def test_save_pretrained_atomic_replaces_or_keeps_the_directory(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "weights.bin").write_bytes(b"old")
    with pytest.raises(OSError):
        save_pretrained_atomic(out, _Saver(fail=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (out / "weights.bin").read_bytes() == b"old"
    save_pretrained_atomic(out, _Saver())
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "weights.bin"]
    assert (out / "weights.bin").read_bytes() == b"new" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_recover_after_a_crash_between_the_two_renames(tmp_path):
    out = tmp_path / "model"
    old = tmp_path / ".model.old"
    old.mkdir()
    (old / "weights.bin").write_bytes(b"old")  # the old version was moved aside, then the crash
    (tmp_path / ".model.tmp-123").mkdir()
    recover_pretrained_dir(out)
    assert (out / "weights.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="path"):
        load_state(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="path"):
        atomic_write(tmp_path, lambda p: None)


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Kill a 4-step rebuild after step 3 (checkpoint at step 2); the resumed run matches a clean one."""
    small = dict(steps=4, batch_size=2, teacher=False, n_layer=1, n_embd=32, n_head=2, vocab_size=600, block_size=64,
                 checkpoint_every=2, warmup=1)
    docs = lm_documents(load_splits(0)["train"].select(range(300)))
    monkeypatch.setattr("rlhf_edu.pretrain.lm_documents", lambda ds: docs)
    clean = pretrain(PretrainConfig(**small, out_dir=str(tmp_path / "clean"), state_path=str(tmp_path / "a.pt")),
                     write_card=False)

    calls = {"n": 0}
    real_clip = torch.nn.utils.clip_grad_norm_

    def crash_on_third_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_clip(*args, **kwargs)

    cfg = PretrainConfig(**small, out_dir=str(tmp_path / "resumed"), state_path=str(tmp_path / "b.pt"))
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", crash_on_third_step)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, write_card=False)
    assert load_state(tmp_path / "b.pt")["step"] == 2
    assert not (tmp_path / "resumed").exists()
    steps_run = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda *a, **k: steps_run.append(1) or real_clip(*a, **k))
    resumed = pretrain(cfg, write_card=False)
    assert len(steps_run) == 2  # it resumed: only steps 3 and 4 ran again

    assert resumed["history"]["loss"] == clean["history"]["loss"]
    w_clean = load_file(tmp_path / "clean" / "model.safetensors")
    w_resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(w_clean[k], w_resumed[k]) for k in w_clean)
    assert not (tmp_path / "b.pt").exists()  # the training state is removed once the model is saved
