"""VCTK (CSTR VCTK Corpus 0.80 and 0.92) → dataset folder, as SV-bench prepares it (seeds-spec §1.8).

Layouts: 0.80 ``wav48/pXXX/pXXX_NNN.wav``; 0.92 ``wav48_silence_trimmed/pXXX/pXXX_NNN_mic{1,2}.flac``.
``speaker-info.txt`` gives AGE, GENDER, ACCENTS, REGION (0.80: ids without the 'p').  p315 is dropped
(no transcripts), p280 is dropped when its audio is missing (0.92 mic2), and only utterances ≥ 025 are
kept (001–024 are prompts shared by all speakers).  Audio is 48 kHz: either written out once as
16 kHz PCM-16 wav (soxr VHQ) or left as is and resampled on the fly by ``load_audio``.

Speaker split: the seed's stratified split (AGE3 × GENDER × ACCENTS × COUNTS2, 60/20/20,
``random_state`` 42, singleton strata to train), or the shipped ``speaker-{train,valid,test}.csv``.
Trials: negatives balanced over GENDER_MATCH × ACCENT_MATCH, positives evenly over speakers
(8,000 each by default), or the shipped ``trials-{valid,test}.csv`` mapped onto the files present.
"""

from __future__ import annotations

import csv
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import load_audio
from ..dataset_folder import DatasetError
from ..trials import balanced_trials, map_trial_paths
from .common import require_dir, split_speakers, write_dataset

_UTT = re.compile(r"^(p\d+|s\d+)_(\d+)(?:_(mic[12]))?$")


def read_speaker_info(path: Path) -> dict[str, dict]:
    """``speaker-info.txt`` (either version) -> {"p225": {AGE, GENDER, ACCENT, REGION}}."""
    if not path.is_file():
        raise DatasetError(f"VCTK speaker metadata not found: {path}")
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        tok = re.sub(r"\(.*?\)", " ", line).split()
        if len(tok) < 4 or tok[0].upper() == "ID" or not tok[1].isdigit():
            continue
        spk = tok[0] if tok[0].startswith(("p", "s")) else f"p{tok[0]}"
        out[spk] = {"AGE": int(tok[1]), "GENDER": tok[2].upper(), "ACCENT": tok[3],
                    "REGION": " ".join(tok[4:]) or "unknown"}
    if not out:
        raise DatasetError(f"{path}: no speaker rows (expected 'ID AGE GENDER ACCENTS REGION')")
    return out


def list_vctk(src: Path, mic: str = "mic1", min_utt: int = 25) -> tuple[Path, str, list[tuple[str, str, int]]]:
    """Find the layout; return (audio dir, layout, [(relative path, speaker, utterance number)])."""
    if (src / "wav48_silence_trimmed").is_dir():
        root, layout, ext = src / "wav48_silence_trimmed", "0.92", ".flac"
    elif (src / "wav48").is_dir():
        root, layout, ext = src / "wav48", "0.80", ".wav"
    else:
        raise DatasetError(f"{src}: neither wav48/ (VCTK 0.80) nor wav48_silence_trimmed/ (VCTK 0.92) found")
    rows = []
    for p in sorted(root.glob(f"*/*{ext}")):
        m = _UTT.match(p.stem)
        if not m or (layout == "0.92" and m.group(3) != mic) or int(m.group(2)) < min_utt:
            continue
        rows.append((p.relative_to(root).as_posix(), m.group(1), int(m.group(2))))
    if not rows:
        raise DatasetError(f"{root}: no {ext} utterances ≥ {min_utt:03d}" + (f" for {mic}" if layout == "0.92" else ""))
    return root, layout, rows


def _bins(x: np.ndarray, n: int) -> np.ndarray:
    """Equal-width bins labelled by their integer midpoint (pandas.cut as used by the seed)."""
    edges = np.linspace(x.min(), x.max(), n + 1)
    idx = np.clip(np.searchsorted(edges, x, side="left") - 1, 0, n - 1)
    return ((edges[idx] + edges[idx + 1]) / 2).astype(int)


def _strat_split(ids: list[str], strata: list, test_size: float, seed: int) -> tuple[list, list]:
    from sklearn.model_selection import train_test_split

    cnt = {s: strata.count(s) for s in set(strata)}
    single = [i for i, s in zip(ids, strata) if cnt[s] < 2]
    multi = [(i, s) for i, s in zip(ids, strata) if cnt[s] >= 2]
    if len(multi) < 2:
        return ids, []
    try:
        a, b = train_test_split([i for i, _ in multi], test_size=test_size, random_state=seed,
                                stratify=[s for _, s in multi])
    except ValueError:  # too few speakers per stratum for stratification (small corpora)
        a, b = train_test_split([i for i, _ in multi], test_size=test_size, random_state=seed)
    return sorted(single + list(a)), sorted(b)


def stratified_split(meta: dict[str, dict], counts: dict[str, int], seed: int = 42) -> tuple[list, list, list]:
    """The seed's split: strata [AGE3, GENDER, ACCENT, COUNTS2]; 60 % train, then 50/50 valid/test."""
    ids = sorted(counts)
    age3 = _bins(np.array([meta[i]["AGE"] for i in ids], float), 3)
    cnt2 = _bins(np.array([counts[i] for i in ids], float), 2)
    strata = [f"{a}|{meta[i]['GENDER']}|{meta[i]['ACCENT']}|{c}" for i, a, c in zip(ids, age3, cnt2)]
    train, rest = _strat_split(ids, strata, 0.4, seed)
    rs = [strata[ids.index(i)] for i in rest]
    cnt = {s: rs.count(s) for s in set(rs)}
    single = [i for i, s in zip(rest, rs) if cnt[s] < 2]
    single = [single[k] for k in np.random.default_rng(seed).permutation(len(single))]
    valid, test = _strat_split([i for i, s in zip(rest, rs) if cnt[s] >= 2],
                               [s for s in rs if cnt[s] >= 2], 0.5, seed)
    h = len(single) // 2
    return train, sorted(valid + single[:h]), sorted(test + single[h:])


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"seed speaker list not found: {path}")
    with open(path, newline="") as f:
        return [r["ID"] for r in csv.DictReader(f)]


def _convert(src_root: Path, dst_root: Path, rel: str, workers_rate: int) -> str:
    out = dst_root / (rel.rsplit("_mic", 1)[0].rsplit(".", 1)[0] + ".wav")
    if out.is_file() and out.stat().st_size > 44:  # resumable: finished files are kept
        return out.relative_to(dst_root).as_posix()
    out.parent.mkdir(parents=True, exist_ok=True)
    wav = load_audio(src_root / rel, workers_rate)
    tmp = out.with_suffix(".tmp.wav")
    try:
        sf.write(str(tmp), wav, workers_rate, subtype="PCM_16")
        os.replace(tmp, out)
    except BaseException:  # a full disk: no half-written file under either name
        tmp.unlink(missing_ok=True)
        raise
    return out.relative_to(dst_root).as_posix()


def _map_seed_trials(path: Path, key_to_rel: dict[tuple[str, int], str]) -> list[dict]:
    """Seed paths ``pXXX/pXXX_NNN.wav`` -> this copy's file of speaker XXX, utterance NNN."""

    def resolve(sample: str) -> str | None:
        m = _UTT.match(Path(sample).stem)
        return key_to_rel.get((m.group(1), int(m.group(2)))) if m else None

    return map_trial_paths(path, resolve, "VCTK")


def prepare_vctk(src: str | os.PathLike, data_dir: str | os.PathLike, mic: str = "mic1",
                 write_16k: bool = False, seed_dir: str | os.PathLike | None = None, n_target: int = 8000,
                 n_nontarget: int = 8000, seed: int = 42, workers: int = 4) -> Path:
    """Write a VCTK dataset folder into ``data_dir`` (see the module docstring)."""
    src = require_dir(src, "VCTK folder")
    out = Path(data_dir).expanduser().resolve()
    if mic not in ("mic1", "mic2"):
        raise ValueError(f"mic must be mic1 or mic2, got {mic!r}")
    root, layout, rows = list_vctk(src, mic)
    meta = read_speaker_info(src / "speaker-info.txt")
    rows = [r for r in rows if r[1] != "p315"]
    unknown = sorted({s for _, s, _ in rows} - set(meta))
    if unknown:
        raise DatasetError(f"{src}/speaker-info.txt has no row for speaker(s) {unknown[:5]}")
    audio_root, rate = root, 48000
    if write_16k:
        audio_root, rate = out / "wav16", 16000
        with ThreadPoolExecutor(max(1, workers)) as ex:
            rels = list(ex.map(lambda r: _convert(root, audio_root, r[0], 16000), rows))
        rows = [(rel, s, n) for rel, (_, s, n) in zip(rels, rows)]
    counts: dict[str, int] = {}
    for _, s, _ in rows:
        counts[s] = counts.get(s, 0) + 1
    key_to_rel = {(s, n): rel for rel, s, n in rows}
    if seed_dir is not None:
        sd = Path(seed_dir)
        present = set(counts)
        tr, va, te = ([i for i in _read_ids(sd / "speakers" / f"speaker-{x}.csv") if i in present]
                      for x in ("train", "valid", "test"))
        valid = _map_seed_trials(sd / "trials" / "trials-valid.csv", key_to_rel)
        test = _map_seed_trials(sd / "trials" / "trials-test.csv", key_to_rel)
    else:
        tr, va, te = stratified_split(meta, counts, seed)
        split_kind = f"stratified (seed {seed})"
        if len(va) < 2 or len(te) < 2:  # a small copy: strata are singletons, all would go to train
            tr, va, te = split_speakers(counts, (0.6, 0.2, 0.2), seed)
            split_kind = f"random 60/20/20 (seed {seed}): too few speakers per stratum"

        def trials(spk: list[str], s: int) -> list[dict]:
            utts = [(rel, sp) for rel, sp, _ in rows if sp in set(spk)]
            return balanced_trials(utts, n_target, n_nontarget, s, meta, ("GENDER", "ACCENT"),
                                   info_keys=("AGE", "REGION"))

        valid, test = trials(va, seed), trials(te, seed + 1)
    sets = {"train": set(tr), "valid": set(va), "test": set(te)}

    def listing(split: str) -> list[dict]:
        return [{"path": rel, "speaker": s, "gender": meta[s]["GENDER"], "accent": meta[s]["ACCENT"],
                 "age": meta[s]["AGE"]} for rel, s, _ in rows if s in sets[split]]

    spk_rows = [{"speaker": s, "split": next(k for k, v in sets.items() if s in v), "age": meta[s]["AGE"],
                 "gender": meta[s]["GENDER"], "accent": meta[s]["ACCENT"], "region": meta[s]["REGION"],
                 "utterances": counts[s]} for s in sorted(counts) if any(s in v for v in sets.values())]
    dropped = sorted(set(meta) - set(counts))
    return write_dataset(out, "vctk", audio_root, rate, listing("train"), valid, test,
                         lists={"valid.csv": listing("valid"), "test.csv": listing("test"), "speakers.csv": spk_rows},
                         meta={"corpus": f"VCTK {layout}", "mic": mic if layout == "0.92" else None,
                               "dropped_speakers": dropped, "min_utterance": 25,
                               "split": "seed lists" if seed_dir else split_kind})
