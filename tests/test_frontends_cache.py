"""Feature cache: round trip, staleness (audio touched / dtype / layers), killed-build resume, training."""

import hashlib
import os

import numpy as np
import pytest
import torch

from layersv.data.folder import check_dataset, open_dataset
from layersv.frontends.cache import CachedCrops, CachedFrontend, FeatureCache, cached_embeddings
from layersv.frontends.ssl import SSLFrontend, load_hf_encoder


def frozen(layers=None, seed=0):
    torch.manual_seed(seed)
    enc, norm = load_hf_encoder("tiny-wavlm")
    return SSLFrontend(enc, do_normalize=norm, layers=layers, freeze=True)


def build(fr, ds, keys, root, **kw):
    return FeatureCache.open_or_build(fr, "ssl", ds, keys, root, progress=False, shard_utts=4, **kw)


@pytest.fixture
def counting(monkeypatch):
    calls = []
    orig = FeatureCache._write_shard

    def counted(*a, **k):
        calls.append(a[3].name)
        return orig(*a, **k)

    monkeypatch.setattr(FeatureCache, "_write_shard", staticmethod(counted))
    return calls


def test_round_trip_matches_the_frontend(tiny_data, tmp_path):
    ds = open_dataset(tiny_data)
    keys = [p for p, _ in ds.train][:6]
    fr = frozen()
    c = build(fr, ds, keys, tmp_path, dtype="float32")
    from layersv.data.audio import load_audio

    for k in keys[:3]:
        wav = torch.from_numpy(load_audio(ds.abspath(k), 16000))[None]
        with torch.no_grad():
            h, n = fr(wav, torch.tensor([wav.shape[1]]))
        assert c.frames(k) == n.item()
        np.testing.assert_allclose(c.get(k), h[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(c.get(k, 3, 9), h[0, :, 3:9].numpy(), atol=1e-5)
    c16 = build(fr, ds, keys, tmp_path)  # fp16 default: another cache, close values
    assert c16.path != c.path and c16.manifest["complete"]
    np.testing.assert_allclose(c16.get(keys[0]), c.get(keys[0]), atol=2e-2, rtol=1e-2)


def test_staleness_touch_dtype_layers(tiny_data, tmp_path, counting):
    ds = open_dataset(tiny_data)
    keys = [p for p, _ in ds.train][:8]  # 2 shards of 4
    fr = frozen()
    build(fr, ds, keys, tmp_path)
    assert len(counting) == 2
    build(fr, ds, keys, tmp_path)
    assert len(counting) == 2  # valid cache: nothing rebuilt
    f = ds.abspath(keys[5])  # touch one file of shard 1: only that shard is rebuilt
    st = os.stat(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    build(fr, ds, keys, tmp_path)
    assert counting[2:] == ["shard_00001.npy"]
    build(fr, ds, keys, tmp_path, dtype="float32")  # another dtype: full build
    assert len(counting) == 5
    c = build(frozen(layers=[1, 3]), ds, keys, tmp_path)  # another layer selection: full build
    assert len(counting) == 7 and c.get(keys[0]).shape[0] == 2
    build(frozen(seed=5), ds, keys, tmp_path)  # other weights: full build
    assert len(counting) == 9
    (c.path / "shard_00000.npy").write_bytes(b"corrupt")  # a broken shard is detected and rebuilt
    build(frozen(layers=[1, 3]), ds, keys, tmp_path)
    assert counting[-1] == "shard_00002.npy" and len(counting) == 10  # its utterances, in a new shard


def test_a_larger_cache_serves_a_subset_and_a_superset_encodes_only_what_is_new(tiny_data, tmp_path, counting):
    """`layersv cache --splits train,valid,test` then training (train + valid) reuses every shard."""
    ds = open_dataset(tiny_data)
    train = [p for p, _ in ds.train][:8]
    extra = list(ds.trials("test").utterances)[:4]
    fr = frozen()
    big = build(fr, ds, sorted(train + extra), tmp_path)
    n = len(counting)
    sub = build(fr, ds, train, tmp_path)
    assert len(counting) == n and sub.path == big.path  # nothing encoded
    assert all(k in sub for k in train + extra)  # nor deleted
    np.testing.assert_array_equal(sub.get(train[0]), big.get(train[0]))
    more = list(ds.trials("valid").utterances)[:3]
    c = build(fr, ds, train + more, tmp_path)
    assert len(counting) == n + 1 and all(k in c for k in train + more + extra)


def test_killed_build_resumes_without_losing_finished_shards(tiny_data, tmp_path, monkeypatch):
    ds = open_dataset(tiny_data)
    keys = [p for p, _ in ds.train][:12]  # 3 shards
    orig = FeatureCache._write_shard
    written = []

    def dies_on_second(*a, **k):
        if len(written) == 1:
            raise KeyboardInterrupt
        written.append(a[3].name)
        return orig(*a, **k)

    monkeypatch.setattr(FeatureCache, "_write_shard", staticmethod(dies_on_second))
    with pytest.raises(KeyboardInterrupt):
        build(frozen(), ds, keys, tmp_path)
    (path,) = list(tmp_path.iterdir())
    import json

    m = json.loads((path / "manifest.json").read_text())
    assert list(m["shards"]) == ["00000"] and not m["complete"]
    resumed = []

    def counted(*a, **k):
        resumed.append(a[3].name)
        return orig(*a, **k)

    monkeypatch.setattr(FeatureCache, "_write_shard", staticmethod(counted))
    c = build(frozen(), ds, keys, tmp_path)
    assert resumed == ["shard_00001.npy", "shard_00002.npy"] and c.manifest["complete"]
    assert sorted(c.keys) == sorted(keys)


def test_resumed_build_after_damage_equals_an_uninterrupted_build(tiny_data, tmp_path, monkeypatch):
    """Killed mid-build, then a truncated shard, a same-size corrupted shard and a stray temporary
    file: the verifying rebuild (``layersv cache``) equals a clean build, shard by shard."""
    import json

    ds = open_dataset(tiny_data)
    keys = [p for p, _ in ds.train][:16]  # 4 shards
    clean = build(frozen(), ds, keys, tmp_path / "clean")
    orig = FeatureCache._write_shard
    n = []

    def dies_on_fourth(*a, **k):
        if len(n) == 3:
            a[3].with_name(a[3].name + ".tmp").write_bytes(b"half a shard")  # what a SIGKILL leaves
            raise KeyboardInterrupt
        n.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(FeatureCache, "_write_shard", staticmethod(dies_on_fourth))
    with pytest.raises(KeyboardInterrupt):
        build(frozen(), ds, keys, tmp_path / "killed")
    monkeypatch.setattr(FeatureCache, "_write_shard", staticmethod(orig))
    (path,) = list((tmp_path / "killed").iterdir())
    assert list(json.loads((path / "manifest.json").read_text())["shards"]) == ["00000", "00001", "00002"]
    s0, s1 = path / "shard_00000.npy", path / "shard_00001.npy"
    s0.write_bytes(s0.read_bytes()[:-64])  # truncated: caught by its size on every open
    raw = bytearray(s1.read_bytes())
    raw[-1] ^= 0xFF  # same size, other content: caught by the checksum when verifying
    s1.write_bytes(bytes(raw))
    assert build(frozen(), ds, keys, tmp_path / "killed").manifest["complete"]  # no verify: s1 slips through
    resumed = build(frozen(), ds, keys, tmp_path / "killed", verify=True)
    assert not list(path.glob("*.tmp"))
    # damaged shards' utterances are re-encoded (into new shards): every utterance equals the clean build
    assert "00000" not in resumed.manifest["shards"] and "00001" not in resumed.manifest["shards"]
    assert sorted(resumed.keys) == sorted(clean.keys)
    for k in clean.keys:
        assert np.array_equal(resumed.get(k), clean.get(k)), k
    for sid, sh in resumed.manifest["shards"].items():  # and every shard matches its recorded checksum
        assert hashlib.sha256((path / f"shard_{sid}.npy").read_bytes()).hexdigest() == sh["sha256"], sid


def test_crops_are_deterministic_and_cached_frontend_passes_through(tiny_data, tmp_path):
    ds = open_dataset(tiny_data)
    keys = [p for p, _ in ds.train][:8]
    c = build(frozen(), ds, keys, tmp_path)
    crops = CachedCrops(c, keys, list(range(8)), crop=30, seed=3)
    a, b = crops[17], crops[17]
    assert a[0].shape == (5, 30, 64) and np.array_equal(a[0], b[0]) and a[2] == b[2]
    batch = CachedCrops.collate([crops[i] for i in range(4)])
    assert batch.wav.shape == (4, 5, 30, 64) and batch.lengths.tolist() == [30] * 4
    cf = CachedFrontend(frozen())
    assert cf(batch.wav, batch.lengths)[0] is batch.wav
    assert cf.num_layers == 5 and cf(torch.zeros(1, 8000), torch.tensor([8000]))[0].shape[:2] == (1, 5)
    with pytest.raises(ValueError, match="frozen"):
        build(SSLFrontend(load_hf_encoder("tiny-wavlm")[0]), ds, keys, tmp_path)


def test_training_from_cache_validates_like_the_waveform_model(tiny_data, tmp_path):
    """Frozen tiny WavLM trained from an fp16 cache: the validation figures it logged (from cached
    states) are those of the saved model run on waveforms, to fp16 rounding.

    A run trained on waveforms is not compared: its crops see only the crop as context while cached
    crops are cut from whole-utterance states, so the two trainings legitimately diverge.
    """
    from conftest import tiny_config

    from layersv import load_model
    from layersv.embed import extract_embeddings
    from layersv.metrics import compute_all
    from layersv.scoring import cosine_scores
    from layersv.train import fit

    cfg = tiny_config(tiny_data, frz_pretrain="true", cache="true", nb_total_step=4, nb_steps_eval=4,
                      skiptest="true", cache_dir=str(tmp_path / "cache"), cache_dtype="float16")
    run = fit(cfg, tmp_path / "run", progress=False)
    from layersv.checkpoint import read_description

    logged = read_description(run)["valid"]["eer"]  # full precision (metrics.csv rounds to 6 digits)
    model = load_model(run)  # the checkpoint holds the real frontend
    ds = open_dataset(tiny_data)
    trials = ds.trials("valid")
    infos = check_dataset(ds, ("valid",), include_train=False)
    wav_emb = extract_embeddings(model, ds, trials.utterances, infos, progress=False)
    model.frontend.freeze()
    c = FeatureCache.open_or_build(model.frontend, "ssl", ds, trials.utterances, tmp_path / "cache",
                                   dtype="float16", progress=False)
    assert c.path.parent == tmp_path / "cache" and len(list((tmp_path / "cache").iterdir())) == 1  # reused
    cache_emb = cached_embeddings(model.backend, c, trials.utterances)
    assert cache_emb.keys == wav_emb.keys
    np.testing.assert_allclose(cache_emb.matrix, wav_emb.matrix, atol=2e-3)  # fp16 states: ~1e-3 relative
    s_cache, s_wav = cosine_scores(cache_emb, trials), cosine_scores(wav_emb, trials)
    np.testing.assert_allclose(s_cache, s_wav, atol=2e-3)
    assert compute_all(s_cache, trials.labels)["eer"] == pytest.approx(logged, abs=1e-6)
    assert compute_all(s_wav, trials.labels)["eer"] == pytest.approx(logged, abs=1e-6)


def test_cli_cache(tiny_data, tmp_path, capsys):
    from layersv.cli import main

    args = ["cache", str(tiny_data), "--backbone_cfg", "tiny-wav2vec2", "--layers", "0,2", "--cache_dir",
            str(tmp_path), "--no-progress", "--splits", "valid"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "12 utterances, 2 layers x 64 (float16)" in out
    assert main(args) == 0  # second call opens the valid cache
    assert main(["cache", str(tiny_data), "--backbone_cfg", "tiny-nope", "--cache_dir", str(tmp_path)]) == 2
    assert main(["cache", str(tiny_data), "--backbone_cfg", "tiny-wavlm", "--layers", "a"]) == 2


def test_eval_embeds_from_the_feature_cache_and_matches_waveforms(tiny_data, tmp_path):
    """A frozen-encoder run whose test audio is cached is evaluated without encoding audio; the scores
    equal those from waveforms (float32 cache) and the report is the same."""
    import json

    from conftest import tiny_config

    from layersv.evaluate import evaluate_run
    from layersv import load_model
    from layersv.train import fit

    cfg = tiny_config(tiny_data, frz_pretrain="true", cache="true", nb_total_step=8, nb_steps_eval=8,
                      skiptest="true", cache_dir=str(tmp_path / "cache"), cache_dtype="float32")
    run = fit(cfg, tmp_path / "run", progress=False)
    model = load_model(run)  # tiny encoders are random: cache the test split with the run's own encoder
    model.frontend.freeze()
    ds = open_dataset(tiny_data)
    FeatureCache.open_or_build(model.frontend, "ssl", ds, ds.trials("test").utterances, tmp_path / "cache",
                               dtype="float32", progress=False)
    calls = []
    orig = FeatureCache.fresh

    def spy(self, keys, ds):
        calls.append(orig(self, keys, ds))
        return calls[-1]

    FeatureCache.fresh = spy
    try:
        cached = evaluate_run(run, progress=False, overrides={"embedding_cache": False})
    finally:
        FeatureCache.fresh = orig
    assert calls and all(calls), "the evaluation did not embed from the feature cache"
    wave = evaluate_run(run, progress=False, overrides={"embedding_cache": False, "feature_cache": False})
    for st in cached["stages"]:
        assert abs(cached["stages"][st]["eer"] - wave["stages"][st]["eer"]) < 1e-6, st
    assert json.loads((run / "report.json").read_text())["trials"] == wave["trials"]


def test_a_layer_subset_reads_the_all_layers_cache(tiny_data, tmp_path):
    """`frontend.layers` of an encoder whose every hidden state is cached: training and evaluation read
    those states from the all-layers cache (no second encoding of the corpus); missing keys: None."""
    from conftest import tiny_config

    from layersv.frontends.cache import all_layers_view
    from layersv.train import fit

    ds = open_dataset(tiny_data)
    keys = [p for p, _ in ds.train][:6]
    full = build(frozen(), ds, keys, tmp_path / "c", dtype="float32")
    view = all_layers_view(frozen(layers=[0, 2]), "ssl", ds, tmp_path / "c", "float32", keys)
    assert view is not None and view.path == full.path
    np.testing.assert_array_equal(view.get(keys[1]), full.get(keys[1])[[0, 2]])
    assert all_layers_view(frozen(layers=[0, 2]), "ssl", ds, tmp_path / "c", "float32", [p for p, _ in ds.train]) is None
    assert all_layers_view(frozen(), "ssl", ds, tmp_path / "c", "float32", keys) is None  # all layers: the cache itself
    st = os.stat(ds.abspath(keys[0]))
    try:  # audio touched since it was cached: stale, not read
        os.utime(ds.abspath(keys[0]), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        assert all_layers_view(frozen(layers=[0, 2]), "ssl", ds, tmp_path / "c", "float32", keys) is None
    finally:
        os.utime(ds.abspath(keys[0]), ns=(st.st_atime_ns, st.st_mtime_ns))

    common = dict(frz_pretrain="true", cache="true", nb_total_step=2, nb_steps_eval=2, skiptest="true",
                  cache_dir=str(tmp_path / "run_cache"), cache_dtype="float16")
    fit(tiny_config(tiny_data, **common), tmp_path / "all", progress=False)
    sub = fit(tiny_config(tiny_data, layers="0,1", **common), tmp_path / "sub", progress=False)
    assert len(list((tmp_path / "run_cache").iterdir())) == 1  # the subset run encoded nothing new
    assert "reading states [0, 1]" in (sub / "training.log").read_text()
