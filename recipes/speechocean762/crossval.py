"""Speaker-level cross-validation: trained backend vs training-free statistics on every speaker once.

    python recipes/speechocean762/crossval.py DATA_DIR CACHE_DIR [--folds 5] [--steps 450] [--seed 0]

The recipe's test split holds 12 speakers, so one EER rests on 12 people. Here all speakers of the
prepared dataset folder (train.csv + valid.csv + test.csv) are split into ``--folds`` disjoint groups;
each group in turn is the test set (every same/different pair of its utterances is a trial) and the
backends are fitted on the other speakers:

* ``stats``: mean ‖ std of hidden state 0 over the utterance, PCA + LDA fitted on the training
  speakers, PLDA (what ``layersv train DATA Stats --layers auto`` chose on this corpus);
* ``trained``: the explore.py prototype of ``configs/superb_pooled.yaml`` (hidden states 0-1,
  per-dimension standardisation, 256-d frame projection, attentive statistics, AAM on the 128-d
  projection, two 20-frame time masks per crop) trained for ``--steps`` steps — a fixed number, no
  selection on the fold's speakers — and PLDA (LDA to 100-d) on its pooled statistics.

Settings were chosen on the recipe's validation speakers beforehand (those speakers are also in one
of the folds here). Reads the frozen encoder's feature cache (``layersv cache DATA --splits all``);
nothing is encoded. Prints one JSON line per fold and the mean.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from explore import SmallASTP, augment_frames, embed, load, pad, plda_eer, random_crops  # noqa: E402

from layersv import metrics  # noqa: E402
from layersv.heads import build_head  # noqa: E402
from layersv.whitening import fit_whitening  # noqa: E402


def read_rows(data: Path) -> list[tuple[str, str]]:
    rows = []
    for name in ("train.csv", "valid.csv", "test.csv"):
        with open(data / name) as f:
            rows += [(r["path"], r["speaker"]) for r in csv.DictReader(f)]
    return sorted(set(rows))


def all_pairs(keys: list[str], spk: dict[str, str]) -> SimpleNamespace:
    i, j = np.triu_indices(len(keys), 1)
    return SimpleNamespace(enroll=[keys[a] for a in i], test=[keys[b] for b in j],
                           labels=np.array([spk[keys[a]] == spk[keys[b]] for a, b in zip(i, j)]))


def stats_fold(feats, tr, te, spk, trials) -> float:
    def st(keys):
        return np.stack([np.concatenate([feats[k][0].astype(np.float32).mean(0), feats[k][0].astype(np.float32).std(0)])
                         for k in keys]).astype(np.float64)
    w = fit_whitening(st(tr), [spk[k] for k in tr])
    e_tr, e_te = w.apply(st(tr)), w.apply(st(te))
    e_tr /= np.linalg.norm(e_tr, axis=1, keepdims=True)
    e_te /= np.linalg.norm(e_te, axis=1, keepdims=True)
    return plda_eer(e_tr, [spk[k] for k in tr], e_te, te, trials)


def trained_fold(feats, tr, te, spk, trials, a) -> dict:
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    layers = [0, 1]
    names = sorted({spk[k] for k in tr})
    lab = np.array([names.index(spk[k]) for k in tr])
    model = SmallASTP(len(layers), 512, 128, c=256, drop=0.2, norm=True)
    head = build_head("aam", 128, len(names), margin=0.2, scale=30.0)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=a.steps, pct_start=0.1)
    aug = SimpleNamespace(tmask=2, tmask_w=20, fnoise=0.0)
    for _ in range(a.steps):
        idx = rng.integers(0, len(tr), 64)
        h, m = pad(random_crops(feats, [tr[i] for i in idx], 100, rng), layers)
        loss, _ = head(model(augment_frames(h, m, rng, aug), m), torch.from_numpy(lab[idx]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
    e_tr, p_tr = embed(model, feats, tr, layers, pooled=True)
    e_te, p_te = embed(model, feats, te, layers, pooled=True)
    ix = {k: n for n, k in enumerate(te)}
    cos = (e_te[[ix[k] for k in trials.enroll]] * e_te[[ix[k] for k in trials.test]]).sum(1)
    return {"trained_cosine": metrics.eer(cos, trials.labels),
            "trained_plda_pooled": plda_eer(p_tr, [spk[k] for k in tr], p_te, te, trials, dim=100)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("cache")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=450)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rows = read_rows(Path(a.data))
    spk = dict(rows)
    speakers = sorted(set(spk.values()))
    t0 = time.time()
    feats = load(Path(a.cache), [k for k, _ in rows])
    feats = {k: np.ascontiguousarray(v[:2]) for k, v in feats.items()}  # hidden states 0-1 only
    print(f"loaded {len(feats)} utterances of {len(speakers)} speakers in {time.time() - t0:.0f} s", flush=True)
    res = []
    for k in range(a.folds):
        held = set(speakers[k :: a.folds])
        te = [u for u, s in rows if s in held]
        tr = [u for u, s in rows if s not in held]
        trials = all_pairs(te, spk)
        r = {"fold": k, "test_speakers": len(held), "train_speakers": len(speakers) - len(held),
             "trials": len(trials.labels), "targets": int(trials.labels.sum()),
             "stats_plda": stats_fold(feats, tr, te, spk, trials), **trained_fold(feats, tr, te, spk, trials, a),
             "t": round(time.time() - t0)}
        res.append(r)
        print(json.dumps({kk: (round(v, 2) if isinstance(v, float) else v) for kk, v in r.items()}), flush=True)
    mean = {m: round(float(np.mean([r[m] for r in res])), 2) for m in ("stats_plda", "trained_cosine", "trained_plda_pooled")}
    wins = sum(r["trained_plda_pooled"] < r["stats_plda"] for r in res)
    print(json.dumps({"mean_eer": mean, "folds_trained_plda_better": f"{wins}/{len(res)}", "args": vars(a)}), flush=True)


if __name__ == "__main__":
    main()
