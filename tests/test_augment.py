"""Augmentation: measured SNR, reverb, speed perturbation labels, determinism, DDP sampler."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from layersv.data.audio import AudioInfo
from layersv.data.augment import Augmenter, NoiseSegment, mix_at_snr, power, read_musan_list, reverberate
from layersv.data.corpora import prepare_musan
from layersv.data.dataset import TrainCrops
from layersv.data.folder import DatasetError

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


