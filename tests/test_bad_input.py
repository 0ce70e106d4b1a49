"""The bad-input sweep: the CLI on broken dataset folders (the table is docs/bad-input.md).

Per case: the exit code, that no traceback leaks (``main`` returns instead of raising, stderr has no
"Traceback"), that the message names the culprit, and that a failed start leaves no run folder.
Usable-but-odd data (8 kHz, stereo, 0.1 s, a BOM, names with spaces and non-ASCII letters) is
accepted with a warning: ``layersv check`` per case, and one training run over all of them together.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from layersv.cli import main

TRAIN = ["SUPERB", "--config", "quickstart", "--nb_total_step", "2", "--nb_steps_eval", "2", "--batch_size", "4",
         "--train_max_sec", "1.0", "--embedding_dim", "16", "--hidden_dim", "16", "--no-progress"]
VICTIM = "spk000/spk000_001.wav"  # a training file
VICTIM2 = "spk001/spk001_002.wav"
SHORT = "spk005/spk005_001.wav"


def wav(rng, sec=1.0, sr=16000, channels=1):
    x = (rng.standard_normal((int(sec * sr), channels)) * 0.1).astype(np.float32)
    return x if channels > 1 else x[:, 0]


def _corrupt(d: Path, rel: str):
    (d / "wav" / rel).write_bytes(b"RIFF\x00\x00garbage, not audio" * 10)


def _empty(d: Path, rel: str):
    (d / "wav" / rel).write_bytes(b"")


def _missing(d: Path, rel: str):
    (d / "wav" / rel).unlink()


def _silent(d: Path, rel: str):
    sf.write(d / "wav" / rel, np.zeros(16000, np.float32), 16000)


def _nan(d: Path, rel: str):
    x = wav(np.random.default_rng(0))
    x[5000] = np.nan
    sf.write(d / "wav" / rel, x, 16000, subtype="FLOAT")


def _rewrite(d: Path, name: str, fn):
    p = d / name
    p.write_text(fn(p.read_text(encoding="utf-8")), encoding="utf-8")


def _replace_path(d: Path, old: str, new: str):
    """Move one audio file to ``new`` and rename it in every list."""
    (d / "wav" / new).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(d / "wav" / old, d / "wav" / new)
    for f in ("train.csv", "valid_trials.csv", "test_trials.csv"):
        _rewrite(d, f, lambda t: t.replace(old, new))


# (name, mutate(data_dir), argv after "train DATA" or None for the default, expected exit, culprit text)
BROKEN = {
    "corrupt audio in train.csv": (lambda d: _corrupt(d, VICTIM), None, [VICTIM, "unreadable"]),
    "empty (0-byte) audio": (lambda d: _empty(d, VICTIM), None, [VICTIM, "unreadable"]),
    "missing audio": (lambda d: _missing(d, VICTIM), None, [VICTIM, "not found"]),
    "silent audio": (lambda d: _silent(d, VICTIM), None, [VICTIM, "digital silence"]),
    "NaN audio": (lambda d: _nan(d, VICTIM), None, [VICTIM, "NaN"]),
    "four broken files at once": (lambda d: (_corrupt(d, VICTIM), _missing(d, VICTIM2), _silent(d, "spk002/spk002_001.wav"),
                                            _nan(d, "spk003/spk003_001.wav")), None,
                                  ["4 problem(s)", VICTIM, VICTIM2, "spk002_001.wav", "spk003_001.wav"]),
    "empty trial list": (lambda d: (d / "test_trials.csv").write_text("LABEL,SAMPLE1,SAMPLE2\n"), None,
                         ["test_trials.csv", "empty trial list"]),
    "trial naming an unknown file": (lambda d: _rewrite(d, "valid_trials.csv", lambda t: t + "1,spk006/nope.wav,"
                                                        "spk006/spk006_001.wav\n"), None, ["spk006/nope.wav", "not found"]),
    "unknown model": (lambda d: None, ["NoSuchModel"], ["NoSuchModel", "UniPool"]),
    "unknown key": (lambda d: None, ["SUPERB", "--batchsize", "4"], ["batchsize", "batch_size"]),
    "train.csv without a speaker column": (lambda d: _rewrite(d, "train.csv", lambda t: "\n".join(
        ln.split(",")[0] for ln in t.splitlines()) + "\n"), None, ["train.csv", "path,speaker"]),
    "valid and test lists coincide": (lambda d: shutil.copy(d / "valid_trials.csv", d / "test_trials.csv"), None,
                                      ["same trials", "valid_trials.csv", "test_trials.csv"]),
}

USABLE = {  # name: (mutate, warning text that must appear)
    "8 kHz audio": (lambda d: sf.write(d / "wav" / VICTIM, wav(np.random.default_rng(1), sr=8000), 8000),
                    ["8000 Hz", "resampled", VICTIM]),
    "stereo audio": (lambda d: sf.write(d / "wav" / VICTIM2, wav(np.random.default_rng(2), channels=2), 16000),
                     ["mixed down", VICTIM2]),
    "0.1 s audio": (lambda d: sf.write(d / "wav" / SHORT, wav(np.random.default_rng(3), sec=0.1), 16000),
                    ["padded", SHORT]),
    "CSV with a byte-order mark": (lambda d: [_rewrite(d, f, lambda t: "\ufeff" + t)
                                              for f in ("train.csv", "valid_trials.csv")], []),
    "paths with spaces and non-ASCII names": (lambda d: (_replace_path(d, "spk004/spk004_001.wav", "spk004/voix à Zürich 1.wav"),
                                                         _replace_path(d, "spk006/spk006_001.wav", "spk006/日本 語.wav")),
                                              []),
    "FLAC, Ogg Vorbis, Ogg Opus and MP3 files": (lambda d: _other_formats(d), []),
}


def _other_formats(d: Path):
    rng = np.random.default_rng(4)
    fmts = {"flac": {}, "ogg": {"subtype": "VORBIS"}, "opus": {"format": "OGG", "subtype": "OPUS"},
            "mp3": {"format": "MP3"}}
    for i, (ext, kw) in enumerate(fmts.items()):
        old = f"spk00{i}/spk00{i}_003.wav"
        new = old[:-3] + ext
        sf.write(d / "wav" / new, wav(rng, sec=1.2, sr=48000 if ext == "opus" else 16000),
                 48000 if ext == "opus" else 16000, **kw)
        (d / "wav" / old).unlink()
        _rewrite(d, "train.csv", lambda t: t.replace(old, new))


@pytest.fixture
def data(tiny_data, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(tiny_data, d, ignore=shutil.ignore_patterns(".layersv_cache"))
    return d


def run_cli(argv, capsys):
    rc = main(argv)  # an exception escaping main would be a traceback for the user: the test fails
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_input_fails_cleanly(case, data, tmp_path, capsys):
    mutate, argv, culprit = BROKEN[case]
    mutate(data)
    out = tmp_path / "run"
    rc, _, err = run_cli(["train", str(data), *(argv or TRAIN[:1]), *TRAIN[1:], "--out", str(out)], capsys)
    assert rc == 2, err
    assert err.startswith("layersv: error:") and "Traceback" not in err
    for c in culprit:
        assert c in err, (case, c, err)
    assert not out.exists(), f"{case}: a failed start left {sorted(p.name for p in out.iterdir())}"
    if argv is None:  # a data problem: `layersv check` gives the same message
        rc, _, err2 = run_cli(["check", str(data)], capsys)
        assert rc == 2 and all(c in err2 for c in culprit)


@pytest.mark.parametrize("case", list(USABLE))
def test_usable_input_is_accepted_with_a_warning(case, data, capsys):
    mutate, warning = USABLE[case]
    mutate(data)
    rc, out, err = run_cli(["check", str(data), "--crop_sec", "1.0"], capsys)
    assert rc == 0, err
    assert "Traceback" not in err and "ok" in out
    for w in warning:
        assert w in err, (case, w, err)


def test_training_runs_on_all_usable_oddities_together(data, tmp_path, capsys):
    for mutate, _ in USABLE.values():
        mutate(data)
    rc, _, err = run_cli(["train", str(data), *TRAIN, "--nb_total_step", "1", "--nb_steps_eval", "1",
                          "--skiptest", "true", "--out", str(tmp_path / "run")], capsys)
    assert rc == 0, err
    assert "8000 Hz" in err and "48000 Hz" in err and "mixed down" in err and "padded" in err
    assert (tmp_path / "run" / "model_best.json").is_file()


def test_nothing_is_left_of_a_start_that_fails_after_creating_the_folder(data, tmp_path, capsys, monkeypatch):
    """A failure after the run folder exists (here: building the model) removes the folder it created."""
    import layersv.runs.gradient as train

    def boom(cfg):
        raise ValueError("model cannot be built")

    monkeypatch.setattr(train, "build_model", boom)
    rc, _, err = run_cli(["train", str(data), *TRAIN, "--out", str(tmp_path / "run")], capsys)
    assert rc == 2 and "model cannot be built" in err
    assert not (tmp_path / "run").exists()


def test_the_docs_table_lists_every_case():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "bad-input.md").read_text(encoding="utf-8")
    rows = {ln.split("|")[1].strip() for ln in doc.splitlines() if ln.startswith("| ")}
    assert set(BROKEN) | set(USABLE) <= rows, sorted(set(BROKEN) | set(USABLE) - rows)
