"""Fast exploration of trained backends on a frozen-encoder feature cache (prototype, in memory).

    python recipes/speechocean762/explore.py DATA_DIR CACHE_DIR VARIANT [--steps N] [...]

Loads every cached utterance of train/valid into memory, trains a small backend on random crops
with an AAM head and reports the validation EER (cosine of full-utterance embeddings) every
``--eval_every`` steps. Only the validation trials are read: this chooses a recipe, the test
trials are scored later by `layersv` runs of the chosen configs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from layersv import metrics
from layersv.data.dataset_folder import open_dataset
from layersv.frontends.cache import FeatureCache
from layersv.heads import build_head
from layersv.scoring.plda import PLDA
from layersv.whitening import fit_whitening


def load(cache_dir: Path, keys: list[str]) -> dict[str, np.ndarray]:
    m = json.loads((cache_dir / "manifest.json").read_text())
    fc = FeatureCache(cache_dir, m)
    return {k: fc.get(k).astype(np.float16) for k in keys}


def stats(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, T, D), mask (B, T) -> (B, 2D) masked mean ‖ std."""
    m = mask[..., None].float()
    n = m.sum(1).clamp_min(1)
    mu = (x * m).sum(1) / n
    var = (((x - mu[:, None]) ** 2) * m).sum(1) / n
    return torch.cat([mu, var.clamp_min(1e-6).sqrt()], -1)


class StatsLDA(nn.Module):
    """layer weights -> [frame MLP residual] -> mean‖std -> (x - mu) @ W (LDA init) -> E."""

    def __init__(self, n_layers, dim, emb, init_layer=0, mlp=0, drop=0.0, mu=None, W=None, learn_w=True):
        super().__init__()
        w = torch.full((n_layers,), -4.0)
        w[init_layer] = 4.0
        self.lw = nn.Parameter(w, requires_grad=learn_w)
        self.mlp = None
        if mlp:
            self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)
        self.drop = nn.Dropout(drop)
        self.register_buffer("mu", torch.as_tensor(mu, dtype=torch.float32) if mu is not None else torch.zeros(2 * dim))
        self.proj = nn.Linear(2 * dim, emb, bias=False)
        if W is not None:
            self.proj.weight.data = torch.as_tensor(W.T, dtype=torch.float32)

    def forward(self, h, mask):  # h (B, L, T, D)
        x = (h.float() * self.lw.softmax(0)[None, :, None, None]).sum(1)
        if self.mlp is not None:
            x = x + self.mlp(x)
        s = stats(x, mask) - self.mu
        return self.proj(self.drop(s))


class StatsLDA2(nn.Module):
    """Frozen statistics solution + trainable corrections that start at zero / identity:
    layer weights -> x + MLP(x) (zero-init) -> mean‖std -> (s - mu) @ W_lda (buffer) -> A (identity init)."""

    def __init__(self, n_layers, dim, init_layer, mu, W, mlp=256, drop=0.0):
        super().__init__()
        w = torch.full((n_layers,), -4.0)
        w[init_layer] = 4.0
        self.lw = nn.Parameter(w)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(drop), nn.Linear(mlp, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("mu", torch.as_tensor(mu, dtype=torch.float32))
        self.register_buffer("W", torch.as_tensor(W, dtype=torch.float32))
        e = W.shape[1]
        self.proj = nn.Linear(e, e)
        nn.init.eye_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.drop = nn.Dropout(drop)

    def forward(self, h, mask):
        x = (h.float() * self.lw.softmax(0)[None, :, None, None]).sum(1)
        x = x + self.mlp(x)
        s = (stats(x, mask) - self.mu) @ self.W
        return self.proj(self.drop(s))


class SmallASTP(nn.Module):
    """SUPERB-like: layer weights -> Linear(D, C) frame -> ReLU/BN -> attentive stats -> E."""

    def __init__(self, n_layers, dim, emb, c=256, drop=0.0, norm=False):
        super().__init__()
        self.lw = nn.Parameter(torch.zeros(n_layers))
        self.norm = nn.BatchNorm1d(dim, affine=False) if norm else None
        self.inp = nn.Sequential(nn.Linear(dim, c), nn.ReLU(), nn.Dropout(drop)) if c else nn.Dropout(drop)
        c = c or dim  # c = 0: no frame projection, attentive statistics of the (normalised) layer mixture
        self.att = nn.Sequential(nn.Linear(c, 128), nn.Tanh(), nn.Linear(128, 1))
        self.bn = nn.BatchNorm1d(2 * c)
        self.out = nn.Linear(2 * c, emb)

    def forward(self, h, mask):
        x = (h.float() * self.lw.softmax(0)[None, :, None, None]).sum(1)
        if self.norm is not None:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        x = self.inp(x)
        a = self.att(x).squeeze(-1).masked_fill(~mask, -1e4).softmax(-1)[..., None]
        mu = (a * x).sum(1)
        sd = ((a * (x - mu[:, None]) ** 2).sum(1)).clamp_min(1e-6).sqrt()
        self.pooled = self.bn(torch.cat([mu, sd], -1))
        return self.out(self.pooled)


def pad(arrs, layers):
    T = max(a.shape[1] for a in arrs)
    L, D = len(layers), arrs[0].shape[2]
    h = np.zeros((len(arrs), L, T, D), np.float32)
    m = np.zeros((len(arrs), T), bool)
    for i, a in enumerate(arrs):
        h[i, :, : a.shape[1]] = a[layers]
        m[i, : a.shape[1]] = True
    return torch.from_numpy(h), torch.from_numpy(m)


def random_crops(feats, keys, crop, rng) -> list[np.ndarray]:
    """One random ``crop``-frame window ``(L, crop, D)`` of each utterance, wrapped when shorter."""
    out = []
    for k in keys:
        x = feats[k]
        s = rng.integers(0, max(1, x.shape[1] - crop + 1))
        c = x[:, s : s + crop]
        if c.shape[1] < crop:
            c = np.concatenate([c, x[:, : crop - c.shape[1]]], 1)  # wrap
        out.append(c)
    return out


@torch.no_grad()
def embed(model, feats, keys, layers, bs=16, pooled=False):
    """Full-utterance embeddings (N, E), length-normalised; ``pooled``: also the raw pooled layer (N, 2C)."""
    model.eval()
    order = sorted(range(len(keys)), key=lambda i: feats[keys[i]].shape[1])
    res, pres = {}, {}
    for j in range(0, len(order), bs):
        idx = order[j : j + bs]
        h, m = pad([feats[keys[i]] for i in idx], layers)
        e = F.normalize(model(h, m), dim=-1)
        for n, (i, ee) in enumerate(zip(idx, e)):
            res[keys[i]] = ee.numpy()
            if pooled:
                pres[keys[i]] = model.pooled[n].numpy()
    model.train()
    out = np.stack([res[k] for k in keys])
    return (out, np.stack([pres[k] for k in keys])) if pooled else out


def plda_scores(tr, tr_lab, va, va_keys, trials, dim=0) -> np.ndarray:
    """PLDA log-likelihood ratios of ``trials`` (PLDA fitted on training embeddings ``tr (N, E)``)."""
    plda = PLDA.fit(tr, tr_lab, dim=dim)
    x = plda.transform(va)
    ix = {k: i for i, k in enumerate(va_keys)}
    a = x[[ix[k] for k in trials.enroll]]
    b = x[[ix[k] for k in trials.test]]
    return plda.score_pairs(a, b)


def plda_eer(tr, tr_lab, va, va_keys, trials, dim=0):
    """Validation EER of a PLDA fitted on training embeddings ``tr (N, E)``."""
    return metrics.eer(plda_scores(tr, tr_lab, va, va_keys, trials, dim), trials.labels)


def augment_frames(h, m, rng, a):
    """Feature-domain augmentation of a crop batch h (B, L, T, D): time masks, per-utterance gain/noise."""
    if a.tmask:
        B, L, T, D = h.shape
        for b in range(B):
            for _ in range(a.tmask):
                w = int(rng.integers(0, a.tmask_w + 1))
                s = int(rng.integers(0, max(1, T - w)))
                h[b, :, s : s + w] = 0.0
    if a.fnoise:
        h = h + a.fnoise * torch.randn_like(h) * h.std(dim=(2, 3), keepdim=True)
    return h


def eer_of(emb, keys, trials):
    ix = {k: i for i, k in enumerate(keys)}
    a = emb[[ix[k] for k in trials.enroll]]
    b = emb[[ix[k] for k in trials.test]]
    return metrics.eer((a * b).sum(1), trials.labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("cache")
    ap.add_argument("variant")
    ap.add_argument("--layers", default="0,1,2,3,4,5,6")
    ap.add_argument("--init_layer", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--eval_every", type=int, default=250)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--crop", type=int, default=100, help="frames (50 per second)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--scale", type=float, default=30.0)
    ap.add_argument("--emb", type=int, default=192)
    ap.add_argument("--mlp", type=int, default=0)
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--norm", action="store_true", help="astp: per-dimension standardisation of the frames")
    ap.add_argument("--c", type=int, default=256, help="astp: frame channels")
    ap.add_argument("--plda", action="store_true", help="also PLDA on full-utterance train embeddings (valid EER)")
    ap.add_argument("--plda_dim", type=int, default=0)
    ap.add_argument("--tmask", type=int, default=0, help="time masks per crop")
    ap.add_argument("--tmask_w", type=int, default=10, help="max frames per time mask")
    ap.add_argument("--fnoise", type=float, default=0.0, help="gaussian noise, relative to the batch's std")
    ap.add_argument("--head", default="aam")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    ds = open_dataset(a.data)
    valid = ds.trials("valid")
    tr_keys = [p for p, _ in ds.train]
    spk = sorted({s for _, s in ds.train})
    lab = np.array([spk.index(s) for _, s in ds.train])
    va_keys = sorted(set(valid.utterances))
    t0 = time.time()
    feats = load(Path(a.cache), tr_keys + va_keys)
    layers = [int(x) for x in a.layers.split(",")]
    print(f"loaded {len(feats)} utterances in {time.time() - t0:.0f} s", flush=True)

    def full_stats(keys, layer_ids):
        out = []
        for k in keys:
            x = torch.from_numpy(feats[k][layer_ids].astype(np.float32))  # (L, T, D)
            out.append(torch.cat([torch.cat([x.mean(1)[i], x.std(1, unbiased=False)[i]]) for i in range(len(layer_ids))]))
        return torch.stack(out).numpy().astype(np.float64)

    li = layers.index(a.init_layer)
    if a.variant == "stats":  # training-free reference: mean+std of one layer, PCA+LDA, cosine
        for L in layers:
            xs = full_stats(tr_keys + va_keys, [L])
            w = fit_whitening(xs[: len(tr_keys)], [s for _, s in ds.train])
            e = w.apply(xs)
            e /= np.linalg.norm(e, axis=1, keepdims=True)
            extra = {"plda": round(plda_eer(e[: len(tr_keys)], lab, e[len(tr_keys):], va_keys, valid), 2)} if a.plda else {}
            print(json.dumps({"variant": "stats", "layer": L, "kind": w.kind, "valid_eer": round(eer_of(e[len(tr_keys):], va_keys, valid), 2), **extra}), flush=True)
        return
    if a.variant == "statslda":
        xs = full_stats(tr_keys, [a.init_layer])
        w = fit_whitening(xs, [s for _, s in ds.train])
        W = w.transform[:, : a.emb] if a.emb else w.transform
        model = StatsLDA(len(layers), 512, W.shape[1], li, a.mlp, a.drop, w.mean, W)
    elif a.variant == "statslda2":
        xs = full_stats(tr_keys, [a.init_layer])
        w = fit_whitening(xs, [s for _, s in ds.train])
        model = StatsLDA2(len(layers), 512, li, w.mean, w.transform, a.mlp or 256, a.drop)
    elif a.variant == "astp":
        model = SmallASTP(len(layers), 512, a.emb, c=a.c, drop=a.drop, norm=a.norm)
    else:
        raise SystemExit(f"unknown variant {a.variant}")
    emb_dim = model.proj.out_features if hasattr(model, "proj") else a.emb
    head = build_head(a.head, emb_dim, len(spk), margin=a.margin, scale=a.scale)
    if a.variant.startswith("statslda"):  # start the classifier at the training speakers' mean embeddings
        with torch.no_grad():
            em = embed(model, feats, tr_keys, layers)
            cent = np.stack([em[lab == c].mean(0) for c in range(len(spk))])
            head.weight.data = torch.as_tensor(cent, dtype=torch.float32)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.steps, pct_start=0.1)
    e0 = eer_of(embed(model, feats, va_keys, layers), va_keys, valid)
    print(json.dumps({"variant": a.variant, "step": 0, "valid_eer": round(e0, 2)}), flush=True)
    best = (e0, 0)
    for step in range(1, a.steps + 1):
        idx = rng.integers(0, len(tr_keys), a.bs)
        h, m = pad(random_crops(feats, [tr_keys[i] for i in idx], a.crop, rng), layers)
        h = augment_frames(h, m, rng, a)
        y = torch.from_numpy(lab[idx])
        loss, logits = head(model(h, m), y)
        acc = round(float((logits.argmax(-1) == y).float().mean()), 3)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        if step % a.eval_every == 0 or step == a.steps:
            e = eer_of(embed(model, feats, va_keys, layers), va_keys, valid)
            best = min(best, (e, step))
            lw = model.lw.softmax(0).detach().numpy().round(2).tolist()
            extra = {}
            if a.plda:
                pooled = hasattr(model, "out")
                tr_e, va_e = embed(model, feats, tr_keys, layers, pooled=pooled), embed(model, feats, va_keys, layers, pooled=pooled)
                tr_lab = lab
                if pooled:
                    extra["plda_pooled"] = round(plda_eer(tr_e[1], tr_lab, va_e[1], va_keys, valid, dim=100), 2)
                    tr_e, va_e = tr_e[0], va_e[0]
                extra["plda"] = round(plda_eer(tr_e, tr_lab, va_e, va_keys, valid, dim=a.plda_dim), 2)
            print(json.dumps({"variant": a.variant, "step": step, "loss": round(float(loss.detach()), 3), "acc": float(acc),
                              "valid_eer": round(e, 2), **extra, "layer_w": lw, "t": round(time.time() - t0)}), flush=True)
    print(json.dumps({"variant": a.variant, "args": vars(a), "best_valid_eer": best[0], "best_step": best[1]}), flush=True)


if __name__ == "__main__":
    main()
