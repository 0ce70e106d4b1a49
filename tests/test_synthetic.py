"""Tests for layersv.synthetic (small corpora, fast)."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from layersv.synthetic import SpeakerParams, generate_corpus, make_speakers, synth_utterance

SMALL = dict(num_speakers=12, utts_per_speaker=4, split=(6, 3, 3), progress=False)
SPLITS = ("train", "valid", "test")


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_corpus(tmp_path_factory.mktemp("syn") / "data", seed=0, **SMALL)


# ---------------------------------------------------------------------------
# contract
# ---------------------------------------------------------------------------
def test_layout_and_contract(corpus: Path):
    for name in ("data.yaml", "train.csv", "valid.csv", "test.csv", "valid_trials.csv", "test_trials.csv", "speakers.csv"):
        assert (corpus / name).is_file(), name
    assert not list(corpus.rglob("*.tmp"))
    assert not (corpus / ".synthetic_in_progress.json").exists()

    text = (corpus / "data.yaml").read_text()
    try:
        import yaml
    except ImportError:  # pragma: no cover
        yaml = None
    if yaml is not None:
        meta = yaml.safe_load(text)
        assert meta["name"] == "synthetic"
        assert meta["audio_root"] == "wav"
        assert meta["sample_rate"] == 16000
        assert meta["seed"] == 0
        assert meta["num_speakers"] == 12
        assert "speakers" in meta
        assert sorted(meta["speakers"]["train"] + meta["speakers"]["valid"] + meta["speakers"]["test"]) == [
            f"spk{i:03d}" for i in range(12)
        ]
    else:
        assert "name: synthetic" in text and "audio_root: wav" in text

    n_total = 0
    for split in SPLITS:
        header, rows = _read_csv(corpus / f"{split}.csv")
        assert header == ["path", "speaker", "duration_s", "gender"]
        assert len(rows) == {"train": 6, "valid": 3, "test": 3}[split] * 4
        for r in rows:
            assert r["path"] == f"{r['speaker']}/{r['speaker']}_{r['path'][-7:-4]}.wav"
            wav = corpus / "wav" / r["path"]
            info = sf.info(str(wav))
            assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
            assert abs(info.frames / 16000 - float(r["duration_s"])) < 1e-3
            assert 2.0 - 1e-3 <= float(r["duration_s"]) <= 4.5 + 1e-3
            assert r["gender"] in ("m", "f")
        n_total += len(rows)
    assert n_total == len(list((corpus / "wav").rglob("*.wav"))) == 48

    header, rows = _read_csv(corpus / "speakers.csv")
    assert header == ["speaker", "split", "f0_hz", "formant_scale", "tilt_db_oct", "rate", "breathiness", "gender"]
    assert len(rows) == 12
    for r in rows:
        assert 80 <= float(r["f0_hz"]) <= 270
        assert 0.8 <= float(r["formant_scale"]) <= 1.25


def test_speakers_disjoint(corpus: Path):
    sets = {s: {r["speaker"] for r in _read_csv(corpus / f"{s}.csv")[1]} for s in SPLITS}
    assert [len(sets[s]) for s in SPLITS] == [6, 3, 3]
    assert not (sets["train"] & sets["valid"]) and not (sets["train"] & sets["test"]) and not (sets["valid"] & sets["test"])
    _, spk = _read_csv(corpus / "speakers.csv")
    for r in spk:
        assert r["speaker"] in sets[r["split"]]
    # both genders in every split
    for s in SPLITS:
        assert {r["gender"] for r in spk if r["split"] == s} == {"m", "f"}


@pytest.mark.parametrize("split", ["valid", "test"])
def test_trials(corpus: Path, split: str):
    header, trials = _read_csv(corpus / f"{split}_trials.csv")
    assert header == ["LABEL", "SAMPLE1", "SAMPLE2"]
    spk_of = {r["path"]: r["speaker"] for r in _read_csv(corpus / f"{split}.csv")[1]}
    pairs = set()
    labels = []
    for t in trials:
        a, b, lab = t["SAMPLE1"], t["SAMPLE2"], int(t["LABEL"])
        assert a != b
        assert a in spk_of and b in spk_of  # only this split's utterances
        assert lab == int(spk_of[a] == spk_of[b])
        key = frozenset((a, b))
        assert key not in pairs
        pairs.add(key)
        labels.append(lab)
    # all same-speaker pairs: 3 speakers x C(4, 2)
    assert sum(labels) == 3 * 6
    assert labels.count(0) == labels.count(1)
    keys = [(t["SAMPLE1"], t["SAMPLE2"]) for t in trials]
    assert keys == sorted(keys)


# ---------------------------------------------------------------------------
# determinism / caching
# ---------------------------------------------------------------------------
def test_determinism(tmp_path: Path):
    kw = dict(SMALL, min_sec=1.0, max_sec=1.5)
    a = _digest(generate_corpus(tmp_path / "a", seed=3, **kw))
    b = _digest(generate_corpus(tmp_path / "b", seed=3, **kw))
    c = _digest(generate_corpus(tmp_path / "c", seed=4, **kw))
    assert a == b
    assert a.keys() == c.keys()
    assert a != c
    wavs = [k for k in a if k.endswith(".wav")]
    assert sum(a[k] != c[k] for k in wavs) == len(wavs)


def test_rerun_skips_and_overwrite(tmp_path: Path):
    kw = dict(SMALL, min_sec=1.0, max_sec=1.5)
    out = generate_corpus(tmp_path / "d", seed=1, **kw)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    # make any rewrite detectable even on coarse-mtime filesystems
    for p in files:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    assert generate_corpus(tmp_path / "d", seed=1, **kw) == out
    assert all(p.stat().st_mtime_ns == 1_000_000_000 for p in files)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    # overwrite regenerates (identical content)
    before = _digest(out)
    generate_corpus(tmp_path / "d", seed=1, overwrite=True, **kw)
    assert all(p.stat().st_mtime_ns != 1_000_000_000 for p in files)
    assert _digest(out) == before
    # a complete data.yaml but a missing wav -> repaired, only the missing file rewritten
    (out / "wav" / "spk000" / "spk000_001.wav").unlink()
    generate_corpus(tmp_path / "d", seed=1, **kw)
    assert _digest(out) == before
    del mtimes


def test_resume_after_interruption(tmp_path: Path):
    kw = dict(SMALL, min_sec=1.0, max_sec=1.5)
    ref = _digest(generate_corpus(tmp_path / "ref", seed=2, **kw))
    out = generate_corpus(tmp_path / "x", seed=2, **kw)
    # simulate an interrupted run: no data.yaml / tables, some wavs missing
    (out / "data.yaml").unlink()
    (out / "test_trials.csv").unlink()
    (out / "wav" / "spk011" / "spk011_004.wav").unlink()
    import json

    (out / ".synthetic_in_progress.json").write_text(
        json.dumps(
            {"version": 1, "seed": 2, "num_speakers": 12, "utts_per_speaker": 4, "split": [6, 3, 3],
             "sample_rate": 16000, "min_sec": 1.0, "max_sec": 1.5},
            sort_keys=True,
        )
        + "\n"
    )
    generate_corpus(tmp_path / "x", seed=2, **kw)
    assert _digest(out) == ref


def test_foreign_folder_and_different_params(tmp_path: Path):
    kw = dict(SMALL, min_sec=1.0, max_sec=1.5)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_corpus(foreign, **kw)
    generate_corpus(foreign, overwrite=True, **kw)
    assert (foreign / "notes.txt").read_text() == "mine"  # unrelated files are kept
    # different parameters on an existing synthetic corpus -> regenerated
    generate_corpus(foreign, seed=5, **kw)
    assert "seed: 5" in (foreign / "data.yaml").read_text()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_speakers=12, split=(6, 3, 2)),  # does not sum up
        dict(num_speakers=12, split=(10, 1, 1)),  # a split with < 2 speakers
        dict(num_speakers=12, split=(6, 3, 3), utts_per_speaker=1),
        dict(num_speakers=12, split=(6, 3, 3), min_sec=3.0, max_sec=2.0),
        dict(num_speakers=12, split=(6, 3, 3), sample_rate=4000),
        dict(num_speakers=4, split=(2, 1, 1)),
    ],
)
def test_argument_validation(tmp_path: Path, kwargs):
    with pytest.raises(ValueError):
        generate_corpus(tmp_path / "bad", progress=False, **kwargs)
    assert not (tmp_path / "bad").exists()


def test_synth_utterance():
    sp = make_speakers(2, seed=0)
    assert isinstance(sp[0], SpeakerParams) and sp[0].gender == "m" and sp[1].gender == "f"
    x = synth_utterance(sp[0], np.random.default_rng(0), 16000, 2.5)
    y = synth_utterance(sp[0], np.random.default_rng(0), 16000, 2.5)
    assert x.dtype == np.float32 and x.shape == (40000,)
    assert np.array_equal(x, y)
    assert 0.3 < np.abs(x).max() <= 0.5 + 1e-6
    assert np.isfinite(x).all()
    clean = synth_utterance(sp[1], np.random.default_rng(1), 16000, 2.0, channel=False)
    assert abs(np.abs(clean).max() - 0.5) < 1e-5


# ---------------------------------------------------------------------------
# learnability
# ---------------------------------------------------------------------------
def _mel_fbank(n_fft: int, sr: int, n_mels: int = 40) -> np.ndarray:
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    edges = 700.0 * (10 ** (np.linspace(mel(50.0), mel(7800.0), n_mels + 2) / 2595.0) - 1.0)
    fb = np.zeros((n_mels, len(f)))
    for i in range(n_mels):
        lo, c, hi = edges[i : i + 3]
        fb[i] = np.clip(np.minimum((f - lo) / (c - lo), (hi - f) / (hi - c)), 0.0, None)
    return fb


def _naive_embedding(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Level-normalised log-mel mean/std over active frames + autocorrelation log-f0."""
    n_fft, hop = 512, 160
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = x[np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]] * np.hanning(n_fft)
    spec = np.fft.rfft(frames, axis=1)
    logmel = np.log(np.abs(spec) ** 2 @ _mel_fbank(n_fft, sr).T + 1e-8)
    energy = logmel.mean(1)
    active = energy > np.percentile(energy, 40)
    lm = logmel[active] - logmel[active].mean(1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames[active], 2 * n_fft, axis=1)) ** 2, axis=1)[:, :n_fft]
    lo, hi = sr // 400, sr // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    voiced = ac[np.arange(len(ac)), lag] > 0.4 * ac[:, 0]
    f0 = float(np.median(sr / lag[voiced])) if voiced.any() else 100.0
    return np.concatenate([lm.mean(0), 0.5 * lm.std(0), np.full(5, np.log(f0))])


def _eer(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    lab = labels[order]
    fa = np.cumsum(1 - lab) / max(1, (1 - lab).sum())
    miss = 1.0 - np.cumsum(lab) / max(1, lab.sum())
    i = int(np.argmin(np.abs(miss - fa)))
    return float((miss[i] + fa[i]) / 2)


def test_eer_helper():
    assert _eer(np.array([3.0, 2.0, 1.0, 0.0]), np.array([1, 1, 0, 0])) == 0.0
    assert _eer(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1, 1, 0, 0])) == 1.0


def test_learnable_not_trivial(corpus: Path):
    """Handcrafted features + cosine scoring beat chance clearly on test trials."""
    results = {}
    for split in ("valid", "test"):
        rows = _read_csv(corpus / f"{split}.csv")[1]
        emb = {r["path"]: _naive_embedding(sf.read(str(corpus / "wav" / r["path"]), dtype="float32")[0]) for r in rows}
        X = np.stack(list(emb.values()))
        mu, sd = X.mean(0), X.std(0) + 1e-6
        emb = {k: (v - mu) / sd for k, v in emb.items()}
        emb = {k: v / np.linalg.norm(v) for k, v in emb.items()}
        trials = _read_csv(corpus / f"{split}_trials.csv")[1]
        scores = np.array([emb[t["SAMPLE1"]] @ emb[t["SAMPLE2"]] for t in trials])
        labels = np.array([int(t["LABEL"]) for t in trials])
        results[split] = _eer(scores, labels)
    assert results["test"] < 0.30, results
    assert results["valid"] < 0.40, results
