#!/usr/bin/env python
"""Benchmark the frontends: cached vs on-the-fly backend training, extraction speed, Whisper slicing.

Usage::

    python bench/frontends.py [--steps 3] [--batch 8] [--whisper /work/shared/models/whisper-base]
                              [--sections training,whisper,rtf]

1. Backend training step (SUPERB + ASTP backend, AAM head, batch of 3 s crops) with a frozen
   WavLM-base-sized and Whisper-base-sized encoder (random weights): on the fly vs from the feature
   cache (memory-mapped fp16 shards), interleaved steps, medians.  Target: cache >= 10x faster.
2. Extraction real-time factor (compute seconds / audio seconds, batch 1) of each frontend family at
   base size for 3 s and 10 s inputs, Whisper sliced and 30 s padded.
3. Whisper sliced positional table vs 30 s padding + cropping (the real whisper-base when present):
   per-layer relative difference of the hidden states, and a downstream statistic -- the correlation
   of cosine scores between mean-pooled utterance embeddings of synthetic speakers, both ways.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

try:
    import layersv  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import transformers as tf
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from layersv.backends import build_backend
from layersv.data.audio import load_audio
from layersv.data.dataset import TrainCrops, collate
from layersv.data.dataset_folder import check_dataset, open_dataset
from layersv.frontends.cache import CachedCrops, FeatureCache
from layersv.frontends.fbank import FbankFrontend
from layersv.frontends.sincnet import SincFrontend
from layersv.frontends.ssl import SSLFrontend
from layersv.frontends.whisper import WhisperFrontend
from layersv.heads import build_head
from layersv.synthetic import generate_corpus

WHISPER_BASE = dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048,
                    decoder_layers=1, num_mel_bins=80, max_source_positions=1500)


def ssl_base(family: str) -> SSLFrontend:
    cfg_cls, model_cls = {"wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"), "hubert": ("HubertConfig", "HubertModel"),
                          "wavlm": ("WavLMConfig", "WavLMModel"),
                          "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel"),
                          "unispeech-sat": ("UniSpeechSatConfig", "UniSpeechSatModel")}[family]
    return SSLFrontend(getattr(tf, model_cls)(getattr(tf, cfg_cls)()), freeze=True)


def whisper_base(pad_30s: bool = False, source: str = "") -> WhisperFrontend:
    enc = tf.WhisperModel.from_pretrained(source).get_encoder() if source else \
        WhisperEncoder(tf.WhisperConfig(**WHISPER_BASE))
    return WhisperFrontend(enc, freeze=True, pad_30s=pad_30s)


def timeit(fn, reps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def bench_training(data: Path, steps: int, batch: int) -> None:
    print(f"\n== backend training step, batch {batch} x 3 s crops, frozen encoder ==")
    ds = open_dataset(data)
    infos = check_dataset(ds, ("valid",))
    rows = ds.train
    spk = {s: i for i, s in enumerate(sorted({s for _, s in rows}))}
    labels = [spk[s] for _, s in rows]
    for name, fr in (("wavlm-base", ssl_base("wavlm")), ("whisper-base", whisper_base())):
        be = build_backend("SUPERB", fr.num_layers, fr.dim, speaker_network="astp", embedding_dim=256)
        head = build_head("aam", 256, len(spk))
        opt = torch.optim.Adam(list(be.parameters()) + list(head.parameters()), lr=1e-3)
        wav_crops = TrainCrops([(str(ds.abspath(p)), p) for p, _ in rows], labels, infos, 16000, 3.0, 0)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cache = FeatureCache.open_or_build(fr, name, ds, [p for p, _ in rows], tmp, progress=False)
            build_s = time.perf_counter() - t0
            crop = int(fr.frame_lengths(torch.tensor([48000]))[0])
            cached = CachedCrops(cache, [p for p, _ in rows], labels, crop, 0)
            k = iter(range(10**9))

            def step(hidden, lengths, lab):
                loss, _ = head(be(hidden, lengths), lab)
                opt.zero_grad()
                loss.backward()
                opt.step()

            def on_the_fly():
                b = collate([wav_crops[next(k)] for _ in range(batch)])
                with torch.no_grad():
                    h, n = fr(b.wav, b.lengths)
                step(h, n, b.labels)

            def from_cache():
                b = CachedCrops.collate([cached[next(k)] for _ in range(batch)])
                step(b.wav, b.lengths, b.labels)

            on_the_fly(), from_cache()  # warm-up
            fly, cac = [], []
            for _ in range(steps):  # interleaved, so both see the same machine load; medians
                t0 = time.perf_counter()
                on_the_fly()
                fly.append(time.perf_counter() - t0)
                for _ in range(3):
                    t0 = time.perf_counter()
                    from_cache()
                    cac.append(time.perf_counter() - t0)
            t_fly, t_cache = float(np.median(fly)), float(np.median(cac))
        audio_s = sum(infos[p].duration for p, _ in rows)
        print(f"{name:13s} on the fly {t_fly * 1000:8.1f} ms/step | from cache {t_cache * 1000:7.1f} ms/step | "
              f"speed-up {t_fly / t_cache:6.1f}x | cache build {build_s:.1f} s for {audio_s:.0f} s of audio")


def bench_rtf() -> None:
    print("\n== extraction real-time factor (compute s / audio s, batch 1, no grad) ==")
    fronts = [(f, lambda f=f: ssl_base(f)) for f in ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech-sat")]
    fronts += [("whisper (sliced)", whisper_base), ("whisper (30 s pad)", lambda: whisper_base(True)),
               ("fbank 80", FbankFrontend), ("mfcc 24", lambda: FbankFrontend(n_mfcc=24)),
               ("sincnet 80x251", SincFrontend)]
    print(f"{'frontend':20s} {'3 s':>8s} {'10 s':>8s}")
    for name, make in fronts:
        fr = make().eval()
        out = []
        for sec in (3, 10):
            wav = torch.randn(1, sec * 16000) * 0.1
            with torch.no_grad():
                t = timeit(lambda: fr(wav, torch.tensor([wav.shape[1]])), 1 if "pad" in name else 2)
            out.append(t / sec)
        print(f"{name:20s} {out[0]:8.4f} {out[1]:8.4f}")
        del fr


def bench_whisper_slicing(data: Path, source: str) -> None:
    label = source or "random whisper-base-sized weights"
    print(f"\n== Whisper: sliced positional table vs 30 s padding + crop ({label}) ==")
    torch.manual_seed(0)
    sliced = whisper_base(False, source).eval()
    padded = WhisperFrontend(sliced.encoder, freeze=True, pad_30s=True).eval()
    ds = open_dataset(data)
    keys = sorted({p for p, _ in ds.train})[:12]
    spk = [s for p, s in sorted(ds.train) if p in keys]
    rel = np.zeros(sliced.num_layers)
    emb = {"sliced": [], "padded": []}
    for k in keys:
        wav = torch.from_numpy(load_audio(ds.abspath(k), 16000))[None]
        n = torch.tensor([wav.shape[1]])
        with torch.no_grad():
            hs, _ = sliced(wav, n)
            hp, _ = padded(wav, n)
        rel += ((hs - hp).norm(dim=(-1, -2)) / hp.norm(dim=(-1, -2)))[0].numpy() / len(keys)
        emb["sliced"].append(hs[0].mean(1).numpy())  # (L, D) mean over frames
        emb["padded"].append(hp[0].mean(1).numpy())
    print("relative L2 difference per hidden state (0 = embeddings): " + " ".join(f"{r:.3f}" for r in rel))
    same = np.equal.outer(spk, spk)[np.triu_indices(len(keys), 1)]
    print(f"{'state':>5s} {'cos(sliced, padded) of pooled':>30s} {'score corr':>10s} "
          f"{'same-diff gap sliced':>20s} {'padded':>7s}")
    for layer in range(sliced.num_layers):
        e = {m: np.stack([x[layer] for x in v]) for m, v in emb.items()}
        e = {m: v / np.linalg.norm(v, axis=1, keepdims=True) for m, v in e.items()}
        cos = float(np.mean(np.sum(e["sliced"] * e["padded"], axis=1)))
        sc = {m: (v @ v.T)[np.triu_indices(len(keys), 1)] for m, v in e.items()}
        corr = float(np.corrcoef(sc["sliced"], sc["padded"])[0, 1])
        gap = {m: sc[m][same].mean() - sc[m][~same].mean() for m in sc}
        print(f"{layer:5d} {cos:30.4f} {corr:10.4f} {gap['sliced']:20.4f} {gap['padded']:7.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--whisper", default="/work/shared/models/whisper-base")
    ap.add_argument("--sections", default="training,whisper,rtf", help="comma-separated subset to run")
    a = ap.parse_args()
    run = set(a.sections.split(","))
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_corpus(Path(tmp) / "data", num_speakers=8, utts_per_speaker=3, split=(4, 2, 2), seed=0,
                               progress=False, min_sec=3.0, max_sec=4.0)
        if "training" in run:
            bench_training(data, a.steps, a.batch)
        if "whisper" in run:
            bench_whisper_slicing(data, a.whisper if Path(a.whisper).is_dir() else "")
    if "rtf" in run:
        bench_rtf()


if __name__ == "__main__":
    main()
