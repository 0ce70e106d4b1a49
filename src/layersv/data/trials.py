"""Balanced trial lists, deterministic, without duplicate or self pairs; and their summary.

Re-implements the balanced sampling of SV-bench (UniPool-SV ``split-*-2-balancedtrials.py``;
seeds-spec §1.8): positives spread evenly over speakers (``ceil(n_target / #speakers)`` each),
negatives split evenly over strata of speaker-attribute matches (e.g. GENDER_MATCH ×
ACCENT_MATCH for VCTK, GENDER_MATCH for LibriSpeech), each stratum spread evenly over its speaker
pairs (``ceil(per_stratum / #pairs)`` each).  Fixed against the seed: listings are sorted and the
RNG is seeded (the seed depended on ``os.listdir`` order), pairs are drawn *without replacement*
and stored in canonical order (the seed could repeat a pair or draw ``(a, a)``), and quotas are
capped at the number of distinct pairs available.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..utils import atomic_write_text
from .dataset_folder import DatasetError, read_trials

_ENUMERATE_MAX = 4_000_000  # enumerate candidate pairs up to this many, else rejection-sample


def _pick_pairs(rng: np.random.Generator, n_a: int, n_b: int | None, k: int) -> list[tuple[int, int]]:
    """``k`` distinct index pairs: within one list (``n_b is None``: i < j) or across two lists."""
    total = n_a * (n_a - 1) // 2 if n_b is None else n_a * n_b
    k = min(k, total)
    if k <= 0:
        return []
    if total <= _ENUMERATE_MAX:
        sel = np.sort(rng.choice(total, size=k, replace=False))
        if n_b is not None:
            return [(int(s // n_b), int(s % n_b)) for s in sel]
        i, j = np.triu_indices(n_a, 1)
        return [(int(i[s]), int(j[s])) for s in sel]
    seen: set[tuple[int, int]] = set()
    while len(seen) < k:
        a = int(rng.integers(n_a))
        b = int(rng.integers(n_a if n_b is None else n_b))
        if n_b is None:
            if a == b:
                continue
            a, b = min(a, b), max(a, b)
        seen.add((a, b))
    return sorted(seen)


def _pair(x: str, y: str) -> tuple[str, str]:
    return (x, y) if x <= y else (y, x)


def balanced_trials(utts: list[tuple[str, str]], n_target: int, n_nontarget: int, seed: int = 42,
                    speaker_meta: dict[str, dict] | None = None, match_keys: tuple[str, ...] = (),
                    utt_meta: dict[str, dict] | None = None, target_keys: tuple[str, ...] = (),
                    info_keys: tuple[str, ...] = ()) -> list[dict]:
    """Balanced trials over ``utts`` = ``(path, speaker)`` rows.

    Args:
        n_target / n_nontarget: requested counts (the per-speaker / per-pair ceilings may exceed
            them slightly, as in the seed; capped by the distinct pairs available).
        speaker_meta: speaker -> {attribute: value}; ``match_keys`` are the attributes whose
            match (1/0) defines the negative strata, written as ``<KEY>_MATCH`` columns.
        utt_meta / target_keys: utterance-level attributes (e.g. ``VIDEO``) whose match splits
            each speaker's positives evenly (VoxCeleb2-test: same / different video).
        info_keys: speaker attributes reported as ``<KEY>_MATCH`` columns without stratifying.
    Returns rows ``{"LABEL", "SAMPLE1", "SAMPLE2", "<KEY>_MATCH"...}`` sorted by (LABEL desc, paths).
    """
    rng = np.random.default_rng(seed)
    speaker_meta, utt_meta = speaker_meta or {}, utt_meta or {}
    by_spk: dict[str, list[str]] = {}
    for path, spk in sorted(set(utts)):
        by_spk.setdefault(spk, []).append(path)
    spks = sorted(by_spk)
    if len(spks) < 2:
        raise DatasetError(f"trial generation needs at least 2 speakers, got {len(spks)}")
    for k in match_keys + info_keys:
        missing = [s for s in spks if k not in speaker_meta.get(s, {})]
        if missing:
            raise DatasetError(f"speaker attribute {k!r} missing for {len(missing)} speaker(s), e.g. {missing[:3]}")

    def spk_cols(a: str, b: str) -> dict:
        return {f"{k}_MATCH": int(speaker_meta[a][k] == speaker_meta[b][k]) for k in match_keys + info_keys}

    def utt_cols(x: str, y: str) -> dict:
        return {f"{k}_MATCH": int(utt_meta.get(x, {}).get(k) == utt_meta.get(y, {}).get(k)) for k in target_keys}

    rows: list[dict] = []
    per_spk = math.ceil(n_target / len(spks)) if n_target > 0 else 0
    for s in spks:
        files = by_spk[s]
        if not target_keys:
            picks = [(files[i], files[j]) for i, j in _pick_pairs(rng, len(files), None, per_spk)]
        else:  # split this speaker's quota evenly over the utterance-match strata
            i, j = np.triu_indices(len(files), 1)
            strata: dict[tuple, list[int]] = {}
            for n, (a, b) in enumerate(zip(i, j)):
                strata.setdefault(tuple(utt_cols(files[a], files[b]).values()), []).append(n)
            picks = []
            for key in sorted(strata):
                cand = strata[key]
                q = min(len(cand), math.ceil(per_spk / len(strata)))
                for n in np.sort(rng.choice(len(cand), size=q, replace=False)):
                    picks.append((files[i[cand[n]]], files[j[cand[n]]]))
        for x, y in picks:
            x, y = _pair(x, y)
            rows.append({"LABEL": 1, "SAMPLE1": x, "SAMPLE2": y, **{f"{k}_MATCH": 1 for k in match_keys + info_keys},
                         **utt_cols(x, y)})

    strata_pairs: dict[tuple, list[tuple[str, str]]] = {}
    for ai, a in enumerate(spks):
        for b in spks[ai + 1:]:
            key = tuple(int(speaker_meta[a][k] == speaker_meta[b][k]) for k in match_keys)
            strata_pairs.setdefault(key, []).append((a, b))
    per_stratum = n_nontarget / max(1, len(strata_pairs))
    for key in sorted(strata_pairs):
        pairs = strata_pairs[key]
        q = math.ceil(per_stratum / len(pairs)) if n_nontarget > 0 else 0
        for a, b in pairs:
            fa, fb = by_spk[a], by_spk[b]
            for i, j in _pick_pairs(rng, len(fa), len(fb), q):
                x, y = _pair(fa[i], fb[j])
                rows.append({"LABEL": 0, "SAMPLE1": x, "SAMPLE2": y, **spk_cols(a, b),
                             **{f"{k}_MATCH": 0 for k in target_keys}})
    rows.sort(key=lambda r: (-r["LABEL"], r["SAMPLE1"], r["SAMPLE2"]))
    return rows


def map_trial_paths(path: Path, resolve, corpus: str) -> list[dict]:
    """Read a seed trial CSV and rewrite SAMPLE1/SAMPLE2 with ``resolve(original) -> relative path | None``.

    Every row and meta column is kept; paths that ``resolve`` cannot find in this copy of ``corpus``
    are collected and reported in one :class:`DatasetError`.
    """
    if not path.is_file():
        raise DatasetError(f"seed trial list not found: {path}")
    rows, missing = [], []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out = dict(r)
            for col in ("SAMPLE1", "SAMPLE2"):
                out[col] = resolve(r[col])
                if out[col] is None:
                    missing.append(r[col])
            rows.append(out)
    if missing:
        raise DatasetError(f"{path}: {len(missing)} trial file(s) not in this {corpus} copy, e.g. {missing[:3]}")
    return rows


def trials_csv(rows: list[dict]) -> str:
    """Rows -> seed-format CSV text (``LABEL,SAMPLE1,SAMPLE2[,meta...]``)."""
    cols = ["LABEL", "SAMPLE1", "SAMPLE2"] + [c for c in (rows[0] if rows else {}) if c not in
                                               ("LABEL", "SAMPLE1", "SAMPLE2")]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_trials(path: str | os.PathLike, rows: list[dict]) -> None:
    if not rows:
        raise DatasetError(f"refusing to write an empty trial list to {path}")
    atomic_write_text(path, trials_csv(rows))


def check_trials(rows_or_path) -> None:
    """Raise :class:`DatasetError` if a list has a self-pair or a duplicate (unordered) pair."""
    t = read_trials(rows_or_path) if isinstance(rows_or_path, (str, Path)) else None
    pairs = list(zip(t.enroll, t.test)) if t is not None else [(r["SAMPLE1"], r["SAMPLE2"]) for r in rows_or_path]
    selfs = [p for p in pairs if p[0] == p[1]]
    if selfs:
        raise DatasetError(f"{len(selfs)} self-pair(s), e.g. {selfs[0]}")
    dup = [p for p, c in Counter(_pair(*p) for p in pairs).items() if c > 1]
    if dup:
        raise DatasetError(f"{len(dup)} duplicate pair(s), e.g. {dup[0]}")


def _speaker_component(enroll: list[str], test: list[str], labels: np.ndarray) -> int:
    """Which path component names the speaker: the one that best agrees with LABEL."""
    parts_a = [Path(p).parts[:-1] for p in enroll]
    parts_b = [Path(p).parts[:-1] for p in test]
    depth = min(min((len(p) for p in parts_a), default=0), min((len(p) for p in parts_b), default=0))
    best, best_score = -1, -1.0
    for c in range(depth):
        same = np.array([a[c] == b[c] for a, b in zip(parts_a, parts_b)])
        score = same[labels == 1].mean() if (labels == 1).any() else 0
        score += (~same[labels == 0]).mean() if (labels == 0).any() else 0
        if score > best_score + 1e-12:
            best, best_score = c, score
    return best


def trials_info(path: str | os.PathLike) -> dict:
    """Counts, targets, utterances, speakers and per-column balance of one trial list."""
    t = read_trials(path)
    lab = t.labels
    comp = _speaker_component(t.enroll, t.test, lab)
    if comp >= 0:
        spk = {Path(p).parts[comp] for p in t.enroll + t.test}
    else:  # files directly at the root: VoxCeleb-style "id/..." is impossible, use the filename prefix
        spk = {Path(p).name.split("_")[0].split("-")[0] for p in t.enroll + t.test}
    pairs = list(zip(t.enroll, t.test))
    info = {"file": str(path), "trials": int(len(lab)), "target": int(lab.sum()),
            "nontarget": int(len(lab) - lab.sum()), "utterances": len(t.utterances), "speakers": len(spk),
            "speaker_component": comp, "self_pairs": sum(a == b for a, b in pairs),
            "duplicate_pairs": len(pairs) - len({_pair(*p) for p in pairs}), "balance": {}}
    text = Path(path).read_text().splitlines()
    if text and text[0].replace(" ", "").upper().startswith("LABEL,"):
        rows = list(csv.DictReader(text))
        for col in rows[0].keys() if rows else []:
            if col.upper() in ("LABEL", "SAMPLE1", "SAMPLE2"):
                continue
            vals = [r[col] for r in rows]
            if len(set(vals)) > 10:
                try:
                    x = np.asarray(vals, dtype=float)
                    info["balance"][col] = {"mean_target": float(x[lab == 1].mean()),
                                            "mean_nontarget": float(x[lab == 0].mean())}
                except ValueError:
                    pass
                continue
            cnt = Counter((int(lb), v) for lb, v in zip(lab, vals))
            info["balance"][col] = {f"{'target' if lb else 'nontarget'} ={v}": n
                                    for (lb, v), n in sorted(cnt.items(), key=lambda kv: (-kv[0][0], kv[0][1]))}
    return info


def format_trials_info(info: dict) -> str:
    lines = [f"{info['file']}: {info['trials']} trials, {info['target']} target / {info['nontarget']} non-target, "
             f"{info['utterances']} utterances, {info['speakers']} speakers, "
             f"{info['self_pairs']} self-pairs, {info['duplicate_pairs']} duplicate pairs"]
    for col, d in info["balance"].items():
        lines.append(f"  {col}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                                             for k, v in d.items()))
    return "\n".join(lines)
