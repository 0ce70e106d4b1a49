"""Speaker-level cross-validation: trained backend vs training-free statistics on every speaker once.

    python recipes/speechocean762/crossval.py DATA_DIR CACHE_DIR [--folds 5] [--steps 450] [--seed 0]
        [--aug_cache AUG_DIR --aug_prob 0.6] [--splits train,valid]

The recipe's test split holds 12 speakers, so one EER rests on 12 people. Here all speakers of the
prepared dataset folder (train.csv + valid.csv + test.csv; ``--splits train,valid`` leaves the test
speakers out, for choosing a setting) are split into ``--folds`` disjoint groups;
each group in turn is the test set (every same/different pair of its utterances is a trial) and the
backends are fitted on the other speakers:

* ``stats``: mean ‖ std of hidden state 0 over the utterance, PCA + LDA fitted on the training
  speakers, PLDA (what ``layersv train DATA Stats --layers auto`` chose on this corpus);
* ``trained``: the explore.py prototype of ``configs/superb_pooled.yaml`` (hidden states 0-1,
  per-dimension standardisation, 256-d frame projection, attentive statistics, AAM on the 128-d
  projection, two 20-frame time masks per crop) trained for ``--steps`` steps — a fixed number, no
  selection on the fold's speakers — and PLDA (LDA to 100-d) on its pooled statistics;
* ``sum``: the sum of the two systems' PLDA log-likelihood ratios (a fusion with fixed, equal
  weights: nothing fitted, so nothing to select on the fold).

``--aug_cache AUG_DIR``: a cache folder holding an augmented copy of *every* utterance (hidden states
0-1 at least), e.g. ``layersv cache ALL --splits train --layers 0,1 --augment_copies 1`` on a dataset
folder whose train.csv lists all speakers; the trained backend then reads ``--aug_prob`` of its
crops from that copy (the run.sh recipe's AUG_COPIES). The copies' babble comes from other speakers
of that list, held-out speakers included (interference, not labels).

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
from explore import SmallASTP, augment_frames, embed, load, pad, plda_scores, random_crops  # noqa: E402

from layersv import metrics  # noqa: E402
from layersv.heads import build_head  # noqa: E402
from layersv.whitening import fit_whitening  # noqa: E402


def read_rows(data: Path, splits: list[str]) -> list[tuple[str, str]]:
    rows = []
    for name in (f"{s}.csv" for s in splits):
        with open(data / name) as f:
            rows += [(r["path"], r["speaker"]) for r in csv.DictReader(f)]
    return sorted(set(rows))


def all_pairs(keys: list[str], spk: dict[str, str]) -> SimpleNamespace:
    i, j = np.triu_indices(len(keys), 1)
    return SimpleNamespace(enroll=[keys[a] for a in i], test=[keys[b] for b in j],
                           labels=np.array([spk[keys[a]] == spk[keys[b]] for a, b in zip(i, j)]))


def stats_fold(feats, tr, te, spk, trials) -> np.ndarray:
    """PLDA LLRs of the fold's trials: mean ‖ std of hidden state 0, PCA + LDA, PLDA."""
    def st(keys):
        return np.stack([np.concatenate([feats[k][0].astype(np.float32).mean(0), feats[k][0].astype(np.float32).std(0)])
                         for k in keys]).astype(np.float64)
    w = fit_whitening(st(tr), [spk[k] for k in tr])
    e_tr, e_te = w.apply(st(tr)), w.apply(st(te))
    e_tr /= np.linalg.norm(e_tr, axis=1, keepdims=True)
    e_te /= np.linalg.norm(e_te, axis=1, keepdims=True)
    return plda_scores(e_tr, [spk[k] for k in tr], e_te, te, trials)


def trained_fold(feats, tr, te, spk, trials, a, aug_feats=None) -> tuple[np.ndarray, np.ndarray]:
    """(cosine scores, PLDA LLRs on the pooled statistics) of the fold's trials; ``aug_feats``: augmented
    hidden states of the training utterances, read for ``a.aug_prob`` of the crops."""
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
    src = feats if aug_feats is None else {**feats, **{"aug:" + k: v for k, v in aug_feats.items()}}
    for _ in range(a.steps):
        idx = rng.integers(0, len(tr), 64)
        keys = [("aug:" if aug_feats is not None and rng.random() < a.aug_prob else "") + tr[i] for i in idx]
        h, m = pad(random_crops(src, keys, 100, rng), layers)
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
    return cos, plda_scores(p_tr, [spk[k] for k in tr], p_te, te, trials, dim=100)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("cache")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=450)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aug_cache", default="", help="cache folder with an augmented copy of every utterance")
    ap.add_argument("--aug_prob", type=float, default=0.6)
    ap.add_argument("--splits", default="train,valid,test", help="whose speakers: train,valid leaves the "
                    "recipe's test speakers out (a cross-validation that may choose settings)")
    a = ap.parse_args()
    rows = read_rows(Path(a.data), a.splits.split(","))
    spk = dict(rows)
    speakers = sorted(set(spk.values()))
    t0 = time.time()
    feats = load(Path(a.cache), [k for k, _ in rows])
    feats = {k: np.ascontiguousarray(v[:2]) for k, v in feats.items()}  # hidden states 0-1 only
    aug = None
    if a.aug_cache:
        head = json.loads((Path(a.aug_cache) / "manifest.json").read_text())["header"]
        pos = [head["layer_ids"].index(i) for i in (0, 1)]
        aug = {k: np.ascontiguousarray(v[pos]) for k, v in load(Path(a.aug_cache), [k for k, _ in rows]).items()}
        print(f"augmented copy {head.get('augment', {}).get('kinds')}: {len(aug)} utterances", flush=True)
    print(f"loaded {len(feats)} utterances of {len(speakers)} speakers in {time.time() - t0:.0f} s", flush=True)
    res = []
    for k in range(a.folds):
        held = set(speakers[k :: a.folds])
        te = [u for u, s in rows if s in held]
        tr = [u for u, s in rows if s not in held]
        trials = all_pairs(te, spk)
        s_plda = stats_fold(feats, tr, te, spk, trials)
        t_cos, t_plda = trained_fold(feats, tr, te, spk, trials, a, aug)
        eer = lambda s: metrics.eer(s, trials.labels)  # noqa: E731
        r = {"fold": k, "test_speakers": len(held), "train_speakers": len(speakers) - len(held),
             "trials": len(trials.labels), "targets": int(trials.labels.sum()),
             "stats_plda": eer(s_plda), "trained_cosine": eer(t_cos), "trained_plda_pooled": eer(t_plda),
             "sum_stats_trained_plda": eer(s_plda + t_plda), "t": round(time.time() - t0)}
        res.append(r)
        print(json.dumps({kk: (round(v, 2) if isinstance(v, float) else v) for kk, v in r.items()}), flush=True)
    mean = {m: round(float(np.mean([r[m] for r in res])), 2)
            for m in ("stats_plda", "trained_cosine", "trained_plda_pooled", "sum_stats_trained_plda")}
    wins = sum(r["trained_plda_pooled"] < r["stats_plda"] for r in res)
    sum_wins = sum(r["sum_stats_trained_plda"] < min(r["stats_plda"], r["trained_plda_pooled"]) for r in res)
    print(json.dumps({"mean_eer": mean, "folds_trained_plda_better": f"{wins}/{len(res)}",
                      "folds_sum_better_than_both": f"{sum_wins}/{len(res)}", "args": vars(a)}), flush=True)


if __name__ == "__main__":
    main()
