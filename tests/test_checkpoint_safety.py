"""A shared model must not run code: a planted pickle payload is never executed by any reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import layersv
from layersv.cli import main
from layersv.config import save_config
from layersv.model import build_model, save_model

from conftest import tiny_config


class Payload:
    """Unpickling this object opens (creates) ``marker`` for writing: code running at load time."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def evil_run(tiny_data, tmp_path):
    """A run folder whose only checkpoints are old-format pickles carrying the payload."""
    run = tmp_path / "evil_run"
    run.mkdir()
    save_config(tiny_config(tiny_data), run / "config.yaml")
    marker = tmp_path / "PWNED"
    for name in ("model_best.pt", "model_last.pt"):
        torch.save({"format": "layersv-1", "state_dict": {}, "payload": Payload(marker)}, run / name)
    wav = tmp_path / "a.wav"
    sf.write(wav, (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32), 16000)
    return run, marker, wav


def test_no_reader_executes_a_planted_pickle(evil_run, tmp_path, capsys):
    run, marker, wav = evil_run
    with pytest.raises(ValueError, match=r"layersv convert .* --trust"):
        layersv.load_model(run)
    with pytest.raises(ValueError, match=r"layersv convert .* --trust"):
        layersv.load_model(run / "model_best.pt")
    commands = {
        "eval": ["eval", str(run), "--no-progress"],
        "verify": ["verify", str(run), str(wav), str(wav)],
        "embed": ["embed", str(run), str(wav), "-o", str(tmp_path / "e.npz")],
        "export": ["export", str(run), "-o", str(tmp_path / "m.onnx")],
        "export-safetensors": ["export", str(run), "-o", str(tmp_path / "m.json")],
        "resume": ["train", "--resume", str(run), "--no-progress"],
        "convert without --trust": ["convert", str(run)],
    }
    for what, argv in commands.items():
        assert main(argv) == 2, what
        err = capsys.readouterr().err
        assert "layersv: error:" in err and "Traceback" not in err, (what, err)
        assert "--trust" in err, (what, err)  # each names the way out
        assert not marker.exists(), f"{what} executed the pickle"
    assert not (tmp_path / "e.npz").exists() and not (tmp_path / "m.onnx").exists()
    # the payload is live: the explicit, trusted conversion does unpickle it (and then refuses the content)
    assert main(["convert", str(run), "--trust"]) == 2
    assert marker.exists()


def test_convert_rewrites_an_old_run(tiny_data, tmp_path):
    """An old pickled checkpoint (layersv-1) converts with --trust and loads to the same embeddings."""
    model = build_model(tiny_config(tiny_data)).eval()
    run = tmp_path / "old"
    run.mkdir()
    old = {**model.describe(), "format": "layersv-1", "step": 7, "valid": {"eer": np.float64(12.5)},
           "state_dict": model.state_dict(), "head_state": {"w": torch.ones(3, 2)}}
    torch.save(old, run / "model_best.pt")
    assert main(["convert", str(run), "--trust"]) == 0
    assert (run / "model_best.legacy.pt").is_file() and not (run / "model_best.pt").exists()
    desc = json.loads((run / "model_best.json").read_text())
    assert desc["step"] == 7 and desc["valid"]["eer"] == 12.5 and desc["format"] == "layersv-2"
    again = layersv.load_model(run)
    x = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_allclose(again.embed(x), model.embed(x), atol=1e-6)
    from layersv.model import read_checkpoint

    assert torch.equal(read_checkpoint(run, with_head=True)["head_state"]["w"], torch.ones(3, 2))


def test_saved_files_hold_no_pickle(tiny_data, tmp_path):
    """The description is plain JSON and the weights plain safetensors (no pickle opcodes)."""
    model = build_model(tiny_config(tiny_data))
    path = save_model(model, tmp_path / "m", head_state={"w": torch.zeros(2)}, step=1, valid={"eer": 3.0})
    json.loads(path.read_text())
    for f in ("m.safetensors", "m.head.safetensors"):
        data = (tmp_path / f).read_bytes()
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])  # safetensors: 8-byte length + JSON header + raw bytes
        assert all(isinstance(v, dict) for k, v in header.items() if k != "__metadata__")
        assert not data.startswith(b"\x80") and b"PK\x03\x04" not in data[:4]


def test_only_convert_may_unpickle():
    """No reader in src/ unpickles: torch.load only with weights_only=True, np.load never with pickles."""
    import re
    from pathlib import Path

    src = Path(layersv.__file__).parent
    for f in sorted(src.rglob("*.py")):
        text = f.read_text(encoding="utf-8")
        assert "allow_pickle=True" not in text and "import pickle" not in text and "yaml.load(" not in text, f
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call or f.name == "convert.py", (f, call)
        for call in re.findall(r"np\.load\([^)]*\)", text):
            assert "allow_pickle=False" in call, (f, call)


def test_convert_old_resume_state_loads_with_weights_only(tiny_data, tmp_path):
    """An old model_last.pt (NumPy RNG tuple, optimizer, scheduler, head) → a weights_only resume state."""
    import random

    from layersv.checkpoint import load_resume_state
    from layersv.utils import set_rng_state

    model = build_model(tiny_config(tiny_data))
    head = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(head.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    np.random.seed(3)
    old_rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
               "cuda": None}
    run = tmp_path / "old"
    run.mkdir()
    torch.save({**model.describe(), "format": "layersv-1", "step": 5, "state_dict": model.state_dict(),
                "train_state": {"head": head.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "rng": [old_rng], "ema": None,
                                "state": {"step": 5, "cycle": 1, "best_eer": np.float64(20.0), "best_step": 5,
                                          "elapsed_s": 1.0, "history": [{"step": 5, "valid_eer": np.float64(20.0)}]}}},
               run / "model_last.pt")
    assert main(["convert", str(run), "--trust"]) == 0
    ts = load_resume_state(run)  # weights_only=True
    assert ts["step"] == 5 and ts["state"]["history"][0]["valid_eer"] == 20.0
    head.load_state_dict(ts["head"])
    opt.load_state_dict(ts["optimizer"])
    set_rng_state(ts["rng"][0])
    expect = np.random.RandomState()
    expect.set_state(old_rng["numpy"])
    assert np.random.rand() == expect.rand()
    assert (run / "model_last.legacy.pt").is_file() and (run / "model_last.json").is_file()
