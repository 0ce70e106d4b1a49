"""Faults lose nothing: a non-finite loss, a full disk, a read-only run folder."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

import layersv
from layersv.cli import main
from layersv.utils import atomic_write_bytes, atomic_write_text

TRAIN = ["SUPERB", "--config", "quickstart", "--nb_total_step", "4", "--nb_steps_eval", "2", "--batch_size", "4",
         "--train_max_sec", "1.0", "--embedding_dim", "16", "--hidden_dim", "16", "--skiptest", "true",
         "--no-progress"]


@pytest.fixture(scope="module")
def stopped_run(tiny_data, tmp_path_factory):
    """A run whose loss turns NaN at step 3 (cycles of 2 steps): (run folder, stderr)."""
    import layersv.train as train

    calls = []
    orig = train.TrainStep.forward

    def nan_at_step_3(self, wav, lengths, labels):
        loss, logits = orig(self, wav, lengths, labels)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 3 else loss), logits

    mp = pytest.MonkeyPatch()
    mp.setattr(train.TrainStep, "forward", nan_at_step_3)
    run = tmp_path_factory.mktemp("faults") / "run"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["train", str(tiny_data), *TRAIN, "--out", str(run)])
    mp.undo()
    assert rc == 2
    return run, err.getvalue()


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(stopped_run):
    run, err = stopped_run
    assert "non-finite loss at step 3" in err and "last good checkpoint (step 2)" in err and "Traceback" not in err
    assert "non-finite loss at step 3" in (run / "training.log").read_text()
    assert json.loads((run / "model_last.json").read_text())["step"] == 2
    assert torch.load(run / "model_last.pt", weights_only=True)["step"] == 2
    layersv.load_model(run)  # the best model of cycle 1 is intact
    assert not list(run.glob("**/*.tmp"))


class _FullDisk:
    """A file object whose writes fail with ENOSPC after ``n`` bytes."""

    def __init__(self, f, n=10):
        self.f, self.n = f, n

    def write(self, b):
        if len(b) > self.n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.n -= len(b)
        return self.f.write(b)

    def __getattr__(self, k):
        return getattr(self.f, k)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return self.f.__exit__(*a)


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    atomic_write_text(target, "old")
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: _FullDisk(real(fd, mode, *a, **k), n=0))
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new content")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_cli_on_a_full_disk_and_a_read_only_run_folder(stopped_run, capsys, monkeypatch):
    """``eval`` on a run whose folder cannot be written: a clear error, no traceback, files unchanged."""
    run, _ = stopped_run
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    import layersv.utils as utils

    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: _FullDisk(real(fd, mode, *a, **k)))
    assert main(["eval", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    monkeypatch.undo()

    def read_only(*a, dir=None, **k):
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(dir))

    monkeypatch.setattr(utils.tempfile, "mkstemp", read_only)
    assert main(["eval", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and str(run) in err and "Traceback" not in err
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "training.log"}
    assert not [p for p in after if p.name.endswith(".tmp")]
    for p, b in after.items():  # every file that existed is unchanged (embeddings may have been added before)
        assert p not in before or before[p] == b or p.name == "training.log", p
