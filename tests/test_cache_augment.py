"""Augmented copies in the feature cache (issue 11 §3): differ from the clean states, reused, keyed by the
augmentation settings, and sampled like on-the-fly augmentation with the same seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from layersv.config import DataConfig
from layersv.data.audio import audio_info, load_audio
from layersv.data.augment import Augmenter
from layersv.data.dataset import TrainCrops, augment_rng
from layersv.data.dataset_folder import open_dataset
from layersv.frontends.cache import FeatureCache
from layersv.frontends.cache_augment import AugmentedCachedCrops, open_augmented_copies
from layersv.frontends.ssl import SSLFrontend, load_hf_encoder

SR = 16000
KINDS = ["colored_noise", "speaker_babble", "telephone"]


def frozen(seed=0):
    torch.manual_seed(seed)
    enc, norm = load_hf_encoder("tiny-wavlm")
    return SSLFrontend(enc, do_normalize=norm, freeze=True)


@pytest.fixture
def counting(monkeypatch):
    calls = []
    orig = FeatureCache._write_shard

    def counted(*a, **k):
        calls.append((a[3].parent.name, a[3].name, k.get("augment") is not None))
        return orig(*a, **k)

    monkeypatch.setattr(FeatureCache, "_write_shard", staticmethod(counted))
    return calls


def _setup(tiny_data, tmp_path, n=8):
    ds = open_dataset(tiny_data)
    rows = ds.train[:n]
    fr = frozen()
    clean = FeatureCache.open_or_build(fr, "ssl", ds, [p for p, _ in rows], tmp_path, progress=False)
    return ds, rows, fr, clean


def _copies(fr, ds, rows, root, k, **data):
    cfg = DataConfig(data_dir=str(ds.root), aug_kinds=list(KINDS), **data)
    return open_augmented_copies(fr, "ssl", ds, rows, root, "float16", cfg, k, seed=0, progress=False)


def test_copies_differ_from_clean_and_are_reused(tiny_data, tmp_path, counting):
    ds, rows, fr, clean = _setup(tiny_data, tmp_path)
    copies = _copies(fr, ds, rows, tmp_path, 2)
    assert len(copies) == 2 and len({clean.path, copies[0].path, copies[1].path}) == 3
    assert [c.header["augment"]["copy"] for c in copies] == [1, 2]
    assert copies[0].header["augment"]["kinds"] == KINDS
    for key, _ in rows:
        h0, h1, h2 = clean.get(key), copies[0].get(key), copies[1].get(key)
        assert h0.shape == h1.shape == h2.shape  # augmentation keeps the length: same frames
        assert np.abs(h1 - h0).mean() > 0.05 * np.abs(h0).mean()  # augmented states differ from the clean
        assert not np.array_equal(h1, h2)  # and from one another
    built = len(counting)
    assert [aug for *_, aug in counting] == [False, True, True]  # clean + 1 shard per copy (8 utterances)
    again = _copies(fr, ds, rows, tmp_path, 2)  # second build: nothing recomputed, same files
    assert len(counting) == built and [c.path for c in again] == [c.path for c in copies]
    np.testing.assert_array_equal(again[1].get(rows[3][0]), copies[1].get(rows[3][0]))
    more = _copies(fr, ds, rows, tmp_path, 3)  # K = 3: copies 1 and 2 reused, copy 3 built
    assert len(counting) == built + 1 and [c.path for c in more[:2]] == [c.path for c in copies]
    other = _copies(fr, ds, rows, tmp_path, 1, noise_snr=[3.0, 4.0])  # another setting: another key
    assert len(counting) == built + 2 and other[0].path not in [c.path for c in more]
    m = json.loads((other[0].path / "manifest.json").read_text())
    assert m["header"]["augment"]["seed"] == 0 and len(m["header"]["augment"]["settings_sha256"]) == 64


def test_copy_is_the_encoder_on_the_augmented_waveform(tiny_data, tmp_path):
    ds, rows, fr, clean = _setup(tiny_data, tmp_path, n=4)
    copies = _copies(fr, ds, rows, tmp_path, 1)
    from layersv.frontends.cache_augment import CopyAugment

    aug = Augmenter([], [], SR, 1.0, tuple(KINDS), talkers=[(str(ds.abspath(p)), s) for p, s in rows])
    ca = CopyAugment(aug, 1, 0, dict(rows))
    key = rows[1][0]
    wav = ca(load_audio(ds.abspath(key), SR), key)
    with torch.no_grad():
        h, n = fr(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
    np.testing.assert_allclose(copies[0].get(key), h[0, :, : int(n)].numpy(), atol=2e-2, rtol=1e-2)


def test_cached_crops_sample_like_on_the_fly(tiny_data, tmp_path):
    """Same seed: same utterances, same crop positions, same augment-or-not decisions per stream item."""
    ds, rows, fr, clean = _setup(tiny_data, tmp_path)
    copies = _copies(fr, ds, rows, tmp_path, 2)
    keys = [p for p, _ in rows]
    spk = sorted({s for _, s in rows})
    labels = [spk.index(s) for _, s in rows]
    files = [(str(ds.abspath(k)), k) for k in keys]
    infos = {k: audio_info(ds.abspath(k)) for k in keys}
    seed, p, crop_sec = 11, 0.6, 0.5
    aug = Augmenter([], [], SR, p, tuple(KINDS), talkers=[(f, lab) for (f, _), lab in zip(files, labels)])
    fly = TrainCrops(files, labels, infos, SR, crop_sec, seed, augment=aug)
    plain = TrainCrops(files, labels, infos, SR, crop_sec, seed)
    crop_f = int(fr.frame_lengths(torch.tensor([int(crop_sec * SR)]))[0])
    cached = AugmentedCachedCrops(clean, copies, keys, labels, crop_f, seed, p)
    decided = []
    for k in range(40):
        w_aug, lab_a, key_a = fly[k]
        w_clean, _, _ = plain[k]
        h, lab_c, key_c = cached[k]
        assert key_a == key_c and lab_a == lab_c  # same utterance
        fly_augmented = not np.array_equal(w_aug, w_clean)
        assert fly_augmented == (cached.copy_of(k) > 0)  # same augment-or-not decision
        decided.append(fly_augmented)
        full = load_audio(ds.abspath(key_a), SR)  # where the waveform crop starts (found, not recomputed)
        cands = [i for i in range(len(full) - len(w_clean) + 1) if full[i] == w_clean[0]
                 and np.array_equal(full[i : i + len(w_clean)], w_clean)]
        n_f, n_s = clean.frames(key_a), len(full)
        expect = cands[0] * (n_f - crop_f + 1) / (n_s - len(w_clean) + 1)  # same draw, frame range
        assert abs(cached.crop_start(k) - expect) <= 1.0
        src = cached.source(k)
        assert src is (clean if cached.copy_of(k) == 0 else copies[cached.copy_of(k) - 1])
        np.testing.assert_array_equal(h, src.get(key_c, cached.crop_start(k), cached.crop_start(k) + crop_f))
    assert decided == [augment_rng(seed, k).random() < p for k in range(40)]
    assert 0.35 < np.mean(decided) < 0.85
    assert {cached.copy_of(k) for k in range(40)} == {0, 1, 2}  # both copies in use
    with pytest.raises(ValueError, match="no augmented copy"):
        AugmentedCachedCrops(clean, copies, keys + [ds.train[-1][0]], labels + [0], crop_f, seed, p)


def test_fit_from_augmented_cache(tiny_data, tmp_path):
    from conftest import tiny_config

    from layersv.config import load_config
    from layersv.runs import fit

    ov = dict(frz_pretrain="true", cache="true", aug_prob=0.6, aug_kinds="colored_noise,telephone",
              nb_total_step=4, nb_steps_eval=2, skiptest="true", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="augment_copies"):
        fit(tiny_config(tiny_data, **ov), tmp_path / "refused", progress=False)
    run = fit(tiny_config(tiny_data, augment_copies=2, **ov), tmp_path / "run", progress=False)
    cfg = load_config(run / "config.yaml")
    assert cfg.data.aug_kinds == ["colored_noise", "telephone"] and cfg.frontend.augment_copies == 2
    heads = [json.loads((d / "manifest.json").read_text())["header"] for d in (tmp_path / "cache").iterdir()]
    assert sorted(h.get("augment", {}).get("copy", 0) for h in heads) == [0, 1, 2]
    assert (run / "model_best.json").is_file() and (run / "model_best.safetensors").is_file()


def test_cli_cache_augment_copies(tiny_data, tmp_path, capsys):
    from layersv.cli import main

    base = ["cache", str(tiny_data), "--backbone_cfg", "tiny-wavlm", "--cache_dir", str(tmp_path), "--no-progress"]
    assert main(base + ["--augment_copies", "1", "--aug", "aug_kinds=colored_noise,telephone",
                        "--aug", "noise_snr=[5,10]"]) == 0
    out = capsys.readouterr().out
    assert "augmented copy 1" in out and "colored_noise, telephone" in out and "24 utterances" in out
    assert main(base + ["--augment_copies", "1", "--aug", "snr=3"]) == 2
    assert main(base + ["--augment_copies", "1", "--aug", "aug_kinds=echo"]) == 2


def test_layer_subset_reads_the_all_layers_copy(tiny_data, tmp_path, counting):
    """A backend on some hidden states (``frontend.layers``) reads them from the copies `layersv cache`
    wrote for every state, instead of encoding the corpus again."""
    ds, rows, fr, clean = _setup(tiny_data, tmp_path)
    full = _copies(fr, ds, rows, tmp_path, 1)
    built = len(counting)
    torch.manual_seed(0)
    enc, norm = load_hf_encoder("tiny-wavlm")
    sub = SSLFrontend(enc, do_normalize=norm, freeze=True, layers=[0, 2])
    view = _copies(sub, ds, rows, tmp_path, 1)
    assert len(counting) == built  # nothing encoded
    key = rows[1][0]
    np.testing.assert_array_equal(view[0].get(key), full[0].get(key)[[0, 2]])
