"""Augmentation: measured SNR, reverb, speed perturbation labels, determinism, DDP sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from layersv.data.audio import AudioInfo
from layersv.data.augment import Augmenter, NoiseSegment, mix_at_snr, power, read_musan_list, reverberate
from layersv.data.corpora import prepare_musan
from layersv.data.dataset import TrainCrops
from layersv.data.dataset_folder import DatasetError

SR = 16000


def test_mix_at_requested_snr():
    rng = np.random.default_rng(0)
    clean = (0.3 * np.sin(np.arange(SR) / 7)).astype(np.float32)
    noise = rng.standard_normal(SR).astype(np.float32)
    for snr in (0.0, 5.0, 17.5):
        out = mix_at_snr(clean, noise, snr)
        assert 10 * np.log10(power(clean) / power(out - clean)) == pytest.approx(snr, abs=1e-3)


def test_augmenter_noise_from_musan_list(tmp_path):
    rng = np.random.default_rng(1)
    for cat in ("noise", "music", "speech"):
        (tmp_path / "musan" / cat).mkdir(parents=True)
        sf.write(str(tmp_path / "musan" / cat / "a.wav"), 0.05 * rng.standard_normal(8 * SR), SR)
    segs = read_musan_list(prepare_musan(tmp_path / "musan", tmp_path / "list"))
    clean = (0.2 * np.sin(np.arange(2 * SR) / 5)).astype(np.float32)
    aug = Augmenter(segs, [], SR, prob=1.0, kinds=("noise",), noise_snr=(8.0, 8.0))
    out = aug(clean, np.random.default_rng(5))
    assert 10 * np.log10(power(clean) / power(out - clean)) == pytest.approx(8.0, abs=0.05)
    np.testing.assert_array_equal(out, aug(clean, np.random.default_rng(5)))  # deterministic per rng
    babble = Augmenter(segs, [], SR, prob=1.0, kinds=("babble",), babble_snr=(15.0, 15.0), babble_count=(4, 4))
    d = babble(clean, np.random.default_rng(2)) - clean  # 4 talkers at 15 dB each: ~ 9 dB together
    assert 10 * np.log10(power(clean) / power(d)) == pytest.approx(15 - 10 * np.log10(4), abs=1.5)
    off = Augmenter(segs, [], SR, prob=0.0)
    assert off(clean, np.random.default_rng(0)) is clean
    with pytest.raises(DatasetError, match="no MUSAN/RIR material"):
        Augmenter([], [], SR, prob=0.5, kinds=("reverb",))
    with pytest.raises(ValueError, match="unknown augmentation"):
        Augmenter(segs, [], SR, prob=0.5, kinds=("echo",))
    with pytest.raises(DatasetError, match="MUSAN list not found"):
        read_musan_list(tmp_path / "nowhere")


def test_reverb_changes_signal_keeps_length():
    x = np.zeros(SR, np.float32)
    x[100] = 1.0
    rir = np.exp(-np.arange(800) / 100.0).astype(np.float32)
    y = reverberate(x, rir)
    assert y.shape == x.shape and not np.allclose(x, y)
    assert power(y) * len(y) == pytest.approx(1.0, rel=1e-4)  # energy-normalised RIR


def test_speed_perturb_new_classes_and_augment_hook(tmp_path):
    files, infos = [], {}
    for i in range(2):
        p = tmp_path / f"s{i}.wav"
        sf.write(str(p), np.sin(np.arange(3 * SR) * (0.05 + 0.02 * i)).astype(np.float32), SR)
        files.append((str(p), p.name))
        infos[p.name] = AudioInfo(3 * SR, SR, 1)
    seg = [NoiseSegment(str(tmp_path / "s0.wav"), "noise", 0.0, 0.0)]
    crops = TrainCrops(files, [0, 1], infos, SR, 1.0, seed=7, speed_perturb=(0.9, 1.1), speed_prob=0.5,
                       augment=Augmenter(seg, [], SR, prob=1.0, kinds=("noise",), noise_snr=(5.0, 5.0)))
    assert crops.num_classes == 6
    items = [crops[k] for k in range(40)]
    assert all(len(w) == SR for w, _, _ in items)
    labels = {lab for _, lab, _ in items}
    assert labels - {0, 1} and labels <= set(range(6))
    assert all(lab % 2 == (0 if key == "s0.wav" else 1) for _, lab, key in items)
    np.testing.assert_array_equal(crops[3][0], crops[3][0])
    plain = TrainCrops(files, [0, 1], infos, SR, 1.0, seed=7)
    assert plain.num_classes == 2 and all(plain[k][1] in (0, 1) for k in range(10))




# --------------------------------------------------------------------------- corpus-free kinds (issue 11 §2)

def _speech_like(n: int, seed: int) -> np.ndarray:
    """Amplitude-modulated harmonics: a stand-in for a voiced clip, ``(n,)`` float32."""
    t = np.arange(n) / SR
    f0 = 110 + 40 * seed
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12))
    return (0.1 * x * (1 + 0.8 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def talkers(tmp_path_factory):
    """Three utterances of each of five speakers: ``[(path, speaker)]``."""
    root = tmp_path_factory.mktemp("talkers")
    rows = []
    for s in range(5):
        for u in range(3):
            p = root / f"spk{s}_{u}.wav"
            sf.write(str(p), _speech_like(int((1.0 + 0.3 * u) * SR), s + u), SR)
            rows.append((str(p), f"spk{s}"))
    return rows


def _snr(clean, out) -> float:
    return 10 * np.log10(power(clean) / power(out - clean))


@pytest.mark.parametrize("kind,snr", [("colored_noise", 0.0), ("colored_noise", 7.3), ("colored_noise", 15.0),
                                      ("speaker_babble", 13.0), ("speaker_babble", 20.0)])
def test_additive_kinds_length_snr_determinism(kind, snr, talkers):
    clean = _speech_like(int(1.7 * SR), 9)
    aug = Augmenter([], [], SR, prob=1.0, kinds=(kind,), noise_snr=(snr, snr), babble_snr=(snr, snr), talkers=talkers)
    assert aug.kinds == (kind,)
    for seed in range(4):
        out = aug.apply(clean, kind, np.random.default_rng(seed), speaker="spk0")
        assert out.shape == clean.shape and out.dtype == np.float32
        assert _snr(clean, out) == pytest.approx(snr, abs=0.1)  # measured on the output
        np.testing.assert_array_equal(out, aug.apply(clean, kind, np.random.default_rng(seed), speaker="spk0"))
    a = aug.apply(clean, kind, np.random.default_rng(0), speaker="spk0")
    b = aug.apply(clean, kind, np.random.default_rng(1), speaker="spk0")
    assert not np.allclose(a, b)


def test_snr_ranges_drawn_per_category(talkers):
    clean = _speech_like(SR, 3)
    aug = Augmenter([], [], SR, prob=1.0, kinds=("colored_noise", "speaker_babble"), talkers=talkers)
    snrs = {k: [_snr(clean, aug.apply(clean, k, np.random.default_rng(i), "spk1")) for i in range(25)]
            for k in aug.kinds}
    assert 0.0 - 0.1 <= min(snrs["colored_noise"]) and max(snrs["colored_noise"]) <= 15.0 + 0.1  # seed: U[0, 15]
    assert 13.0 - 0.1 <= min(snrs["speaker_babble"]) and max(snrs["speaker_babble"]) <= 20.0 + 0.1  # U[13, 20]
    assert np.ptp(snrs["colored_noise"]) > 5 and np.ptp(snrs["speaker_babble"]) > 3


def test_speaker_babble_uses_3_to_7_other_speakers(talkers, monkeypatch):
    aug = Augmenter([], [], SR, prob=1.0, kinds=("speaker_babble",), talkers=talkers, babble_speakers=(3, 7))
    used = []
    orig = aug._talker
    monkeypatch.setattr(aug, "_talker", lambda spk, n, rng: used.append(spk) or orig(spk, n, rng))
    for i in range(12):
        used.clear()
        aug.apply(_speech_like(SR, 1), "speaker_babble", np.random.default_rng(i), speaker="spk2")
        assert "spk2" not in used and len(set(used)) == len(used)  # distinct, never the crop's own speaker
        assert 3 <= len(used) <= 4  # 4 other speakers exist: min(U{3..7}, 4)
    no_one = Augmenter([], [], SR, prob=1.0, kinds=("colored_noise", "speaker_babble"), talkers=talkers[:3])
    assert no_one.kinds == ("colored_noise",)  # a single training speaker: no babble material


@pytest.mark.parametrize("color,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_colored_noise_spectrum(color, slope):
    from scipy.signal import welch

    from layersv.data.colored_noise import colored_noise

    x = colored_noise(8 * SR, color, np.random.default_rng(0))
    assert x.shape == (8 * SR,) and power(x) == pytest.approx(1.0, rel=1e-4)
    f, pxx = welch(x, SR, nperseg=4096)
    band = (f > 50) & (f < 5000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(pxx[band]), 1)[0]  # PSD ∝ f^slope
    assert fitted == pytest.approx(slope, abs=0.15)
    np.testing.assert_array_equal(x, colored_noise(8 * SR, color, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="unknown noise colour"):
        colored_noise(10, "violet", np.random.default_rng(0))


@pytest.mark.parametrize("mulaw", [False, True])
def test_telephone_band_and_length(mulaw):
    from scipy.signal import welch

    from layersv.data.telephone import telephone

    x = (0.1 * np.random.default_rng(0).standard_normal(2 * SR + 37)).astype(np.float32)
    y = telephone(x, SR, (300.0, 3400.0), mulaw)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, telephone(x, SR, (300.0, 3400.0), mulaw))
    f, p = welch(y, SR, nperseg=1024)
    inband = p[(f > 500) & (f < 3000)].mean()
    assert p[f > 4200].mean() < 1e-3 * inband  # nothing above the 8 kHz Nyquist
    assert p[(f > 20) & (f < 120)].mean() < 0.05 * inband  # low end cut
    aug = Augmenter([], [], SR, prob=1.0, kinds=("telephone",), telephone_mulaw=mulaw)
    np.testing.assert_array_equal(aug(x, np.random.default_rng(1)), y)
    with pytest.raises(ValueError, match="telephone band"):
        telephone(x, SR, (300.0, 5000.0))


# --------------------------------------------------------------------------- simulated RIR bank

SMALL_BANK = dict(n_rooms=3, rt60=(0.2, 0.4), max_order=12, max_len_sec=0.4)


def test_rir_bank_reproducible_and_reused(tmp_path):
    pytest.importorskip("pyroomacoustics")
    import json

    from layersv.data.rir_bank import BankParams, open_rir_bank

    a = open_rir_bank(tmp_path / "a", BankParams(seed=0, **SMALL_BANK))
    b = open_rir_bank(tmp_path / "b", BankParams(seed=0, **SMALL_BANK))
    c = open_rir_bank(tmp_path / "c", BankParams(seed=1, **SMALL_BANK))
    assert len(a) == 3 and all(0.05 * SR < len(a[i]) <= 0.4 * SR for i in range(3))
    np.testing.assert_array_equal(a.data, b.data)  # same seed: identical bank
    assert a.digest == b.digest and a.manifest["rooms"] == b.manifest["rooms"]
    assert a.digest != c.digest and not np.array_equal(a[0][:1000], c[0][:1000])  # another seed: another bank
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["params"]["seed"] == 0 and m["params"]["n_rooms"] == 3 and len(m["rooms"]) == 3
    assert {"dims_m", "rt60_target_s", "source_m", "mic_m"} <= set(m["rooms"][0])
    npz = tmp_path / "a" / "rirs.npz"
    stamp = npz.stat().st_mtime_ns
    again = open_rir_bank(tmp_path / "a", BankParams(seed=0, **SMALL_BANK))  # reused: not rewritten
    assert npz.stat().st_mtime_ns == stamp and np.array_equal(again.data, a.data)
    bigger = open_rir_bank(tmp_path / "a", BankParams(seed=0, **{**SMALL_BANK, "n_rooms": 4}))  # params differ
    assert len(bigger) == 4 and np.array_equal(bigger[2], a[2])  # rebuilt; room i depends on (seed, i) only
    npz.write_bytes(b"broken")
    assert len(open_rir_bank(tmp_path / "a", BankParams(seed=0, **SMALL_BANK))) == 3  # corrupt: rebuilt
    with pytest.raises(FileNotFoundError, match="prepare rir-bank"):
        open_rir_bank(tmp_path / "none", BankParams(seed=0, **SMALL_BANK), build=False)


def test_sim_reverb_kind(tmp_path):
    pytest.importorskip("pyroomacoustics")
    from layersv.data.rir_bank import BankParams, open_rir_bank

    bank = open_rir_bank(tmp_path / "bank", BankParams(seed=0, **SMALL_BANK))
    clean = _speech_like(SR, 2)
    aug = Augmenter([], [], SR, prob=1.0, kinds=("sim_reverb",), rir_bank=bank)
    out = aug(clean, np.random.default_rng(3))
    assert out.shape == clean.shape and not np.allclose(out, clean)
    np.testing.assert_array_equal(out, aug(clean, np.random.default_rng(3)))
    outs = {aug(clean, np.random.default_rng(s)).tobytes() for s in range(12)}
    assert len(outs) == 3  # one output per room of the bank
    assert Augmenter([], [], SR, prob=1.0, kinds=("sim_reverb", "telephone")).kinds == ("telephone",)


def test_missing_pyroomacoustics_names_the_extra(tmp_path, monkeypatch):
    import sys

    from layersv.data.rir_bank import BankParams, MissingDependency, open_rir_bank

    monkeypatch.setitem(sys.modules, "pyroomacoustics", None)
    with pytest.raises(MissingDependency, match=r"layersv\[augment\]"):
        open_rir_bank(tmp_path / "bank", BankParams(seed=0, **SMALL_BANK))


def test_build_augmenter_from_config_keys(tmp_path, talkers):
    pytest.importorskip("pyroomacoustics")
    from layersv.config import Config, DataConfig, apply_overrides
    from layersv.data.augment import build_augmenter

    cfg = apply_overrides(Config(), {"aug_prob": "0.6",
                                     "aug_kinds": "sim_reverb,colored_noise,speaker_babble,telephone",
                                     "noise_colors": "pink,brown", "babble_speakers": "[2,3]", "rir_bank_rooms": "3",
                                     "rir_bank_seed": "5", "telephone_mulaw": "false", "telephone_band": "[200,3000]"})
    d = cfg.data
    assert d.noise_colors == ["pink", "brown"] and d.babble_speakers == [2, 3] and d.telephone_mulaw is False
    d.data_dir = str(tmp_path)
    aug = build_augmenter(d, SR, talkers)
    assert aug.kinds == ("sim_reverb", "colored_noise", "speaker_babble", "telephone") and aug.prob == 0.6
    assert (tmp_path / "rir_bank" / "manifest.json").is_file() and len(aug.rir_bank) == 3  # built on first use
    assert aug.noise_colors == ("pink", "brown") and aug.telephone_band == (200.0, 3000.0)
    import pickle

    clone = pickle.loads(pickle.dumps(aug))  # travels to spawned loader workers
    x = _speech_like(SR, 4)
    for i in range(6):
        np.testing.assert_array_equal(clone(x, np.random.default_rng(i), "spk0"),
                                      aug(x, np.random.default_rng(i), "spk0"))
    assert build_augmenter(DataConfig(aug_kinds=["colored_noise"]), SR) is None  # aug_prob 0: off
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_augmenter(DataConfig(aug_kinds=["colored_noise", "echo"]), SR)  # checked even when off
    with pytest.raises(ValueError, match="noise_colors"):
        build_augmenter(DataConfig(aug_prob=0.5, aug_kinds=["colored_noise"], noise_colors=["violet"]), SR)


def test_train_crops_babble_excludes_own_speaker_and_is_deterministic(tmp_path, talkers):
    files = [(p, Path(p).name) for p, _ in talkers]
    spk = sorted({s for _, s in talkers})
    labels = [spk.index(s) for _, s in talkers]
    infos = {Path(p).name: AudioInfo(sf.info(p).frames, SR, 1) for p, _ in talkers}
    aug = Augmenter([], [], SR, prob=0.6, kinds=("speaker_babble", "colored_noise"),
                    talkers=[(p, lab) for (p, _), lab in zip(talkers, labels)])
    crops = TrainCrops(files, labels, infos, SR, 0.8, seed=4, augment=aug)
    plain = TrainCrops(files, labels, infos, SR, 0.8, seed=4)
    changed = [not np.array_equal(crops[k][0], plain[k][0]) for k in range(60)]
    assert 0.4 < np.mean(changed) < 0.8  # ~60 % of crops augmented
    np.testing.assert_array_equal(crops[7][0], crops[7][0])
    from layersv.data.dataset import augment_rng

    assert changed == [augment_rng(4, k).random() < 0.6 for k in range(60)]  # decided by the item's generator


def test_cli_prepare_rir_bank(tmp_path, capsys):
    pytest.importorskip("pyroomacoustics")
    import json

    from layersv.cli import main

    assert main(["prepare", "rir-bank", str(tmp_path), "--n_rooms", "2", "--seed", "3"]) == 0
    assert "2 rooms, seed 3" in capsys.readouterr().out
    m = json.loads((tmp_path / "rir_bank" / "manifest.json").read_text())
    assert m["params"]["n_rooms"] == 2 and m["params"]["seed"] == 3
    stamp = (tmp_path / "rir_bank" / "rirs.npz").stat().st_mtime_ns
    assert main(["prepare", "rir-bank", str(tmp_path), "--n_rooms", "2", "--seed", "3"]) == 0
    assert (tmp_path / "rir_bank" / "rirs.npz").stat().st_mtime_ns == stamp  # reused
    assert main(["prepare", "rir-bank", str(tmp_path), "--n_rooms", "0"]) == 2  # bad input: a clear error
    assert "n_rooms must be >= 1" in capsys.readouterr().err


def test_real_speech_babble_and_telephone():
    """speechocean762 (Ogg Opus, real speakers) when ../shared is present: exact SNR, own speaker excluded."""
    import os

    from conftest import SHARED

    root = Path(os.environ.get("LAYERSV_SHARED") or SHARED) / "data" / "speechocean762-train" / "opus"
    if not root.is_dir():
        pytest.skip("../shared/data/speechocean762-train absent")
    spk = sorted(d.name for d in root.iterdir() if d.is_dir())[:5]
    rows = [(str(f), s) for s in spk for f in sorted((root / s).glob("*.opus"))[:2]]
    from layersv.data.audio import load_audio

    clean = load_audio(rows[0][0], SR)[: 2 * SR]
    aug = Augmenter([], [], SR, prob=1.0, kinds=("speaker_babble", "telephone"), talkers=rows,
                    babble_snr=(13.0, 13.0))
    out = aug.apply(clean, "speaker_babble", np.random.default_rng(0), speaker=spk[0])
    assert out.shape == clean.shape and _snr(clean, out) == pytest.approx(13.0, abs=0.1)
    tel = aug.apply(clean, "telephone", np.random.default_rng(0))
    assert tel.shape == clean.shape and np.corrcoef(tel, clean)[0, 1] > 0.5  # same speech, narrower band
