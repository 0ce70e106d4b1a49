"""Balanced trial generation invariants and the shipped seed lists' counts."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from layersv.data.dataset_folder import DatasetError, read_trials
from layersv.data.trials import balanced_trials, check_trials, trials_info, write_trials

SHARED = Path(os.environ.get("LAYERSV_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
SEED = SHARED / "seed-data" / "UniPool-SV" / "data"


def corpus(n_spk=8, n_utt=12):
    utts = [(f"s{s}/u{u:02d}.wav", f"s{s}") for s in range(n_spk) for u in range(n_utt)]
    meta = {f"s{s}": {"GENDER": "FM"[s % 2], "ACCENT": "AB"[(s // 2) % 2]} for s in range(n_spk)}
    return utts, meta


def test_balanced_invariants():
    utts, meta = corpus()
    rows = balanced_trials(utts, 80, 400, seed=3, speaker_meta=meta, match_keys=("GENDER", "ACCENT"))
    check_trials(rows)  # no self-pair, no duplicate unordered pair
    pos = [r for r in rows if r["LABEL"] == 1]
    neg = [r for r in rows if r["LABEL"] == 0]
    assert all(r["SAMPLE1"].split("/")[0] == r["SAMPLE2"].split("/")[0] for r in pos)
    assert all(r["SAMPLE1"].split("/")[0] != r["SAMPLE2"].split("/")[0] for r in neg)
    assert set(Counter(r["SAMPLE1"].split("/")[0] for r in pos).values()) == {10}  # ceil(80/8) per speaker
    cells = Counter((r["GENDER_MATCH"], r["ACCENT_MATCH"]) for r in neg)
    assert len(cells) == 4 and max(cells.values()) - min(cells.values()) <= 0.1 * max(cells.values())
    assert len(neg) >= 400
    assert rows == balanced_trials(utts, 80, 400, seed=3, speaker_meta=meta, match_keys=("GENDER", "ACCENT"))
    assert rows != balanced_trials(utts, 80, 400, seed=4, speaker_meta=meta, match_keys=("GENDER", "ACCENT"))
    # listing order does not matter
    assert rows == balanced_trials(utts[::-1], 80, 400, seed=3, speaker_meta=meta, match_keys=("GENDER", "ACCENT"))


def test_quota_capped_by_available_pairs():
    utts, _ = corpus(n_spk=3, n_utt=3)
    rows = balanced_trials(utts, 1000, 1000, seed=0)
    check_trials(rows)
    assert sum(r["LABEL"] for r in rows) == 3 * 3  # C(3,2) per speaker
    assert sum(1 - r["LABEL"] for r in rows) == 3 * 9  # 3 speaker pairs × 3·3


def test_same_video_split_and_errors(tmp_path):
    utts = [(f"id{s}/v{v}/{u}.wav", f"id{s}") for s in range(3) for v in range(3) for u in range(4)]
    vm = {p: {"VIDEO": p.rsplit("/", 1)[0]} for p, _ in utts}
    rows = balanced_trials(utts, 60, 60, seed=1, utt_meta=vm, target_keys=("VIDEO",))
    same = Counter(r["VIDEO_MATCH"] for r in rows if r["LABEL"] == 1)
    assert same[0] == same[1] == 30
    with pytest.raises(DatasetError, match="at least 2 speakers"):
        balanced_trials(utts[:4], 10, 10)
    with pytest.raises(DatasetError, match="missing"):
        balanced_trials(utts, 10, 10, speaker_meta={}, match_keys=("GENDER",))
    with pytest.raises(DatasetError, match="self-pair"):
        check_trials([{"SAMPLE1": "a", "SAMPLE2": "a"}])
    with pytest.raises(DatasetError, match="duplicate"):
        check_trials([{"SAMPLE1": "a", "SAMPLE2": "b"}, {"SAMPLE1": "b", "SAMPLE2": "a"}])
    write_trials(tmp_path / "t.csv", rows)
    info = trials_info(tmp_path / "t.csv")
    assert (info["trials"], info["target"], info["speakers"], info["duplicate_pairs"]) == (len(rows), 60, 3, 0)
    assert info["balance"]["VIDEO_MATCH"]["target =1"] == 30
    (tmp_path / "bad.csv").write_text("LABEL,SAMPLE1,SAMPLE2\n2,a,b\n")
    with pytest.raises(DatasetError, match="0 or 1"):
        read_trials(tmp_path / "bad.csv")


@pytest.mark.parametrize("rel,n,target,speakers", [
    ("VCTK-Corpus/preprocess/trials/trials-test.csv", 16072, 8010, 18),
    ("VCTK-Corpus/preprocess/trials/trials-valid.csv", 16040, 8010, 18),
    ("LibriSpeech/preprocess/trials/trials-test.csv", 36427, 18031, 73),
    ("VoxCeleb/preprocess/trials/trials-vox1.csv", 37720, 18860, 40),
])
def test_seed_lists(rel, n, target, speakers):
    p = SEED / rel
    if not p.is_file():
        pytest.skip(f"{p} not available (set LAYERSV_SHARED)")
    t = read_trials(p)
    assert (len(t), int(t.labels.sum())) == (n, target)
    info = trials_info(p)
    assert info["speakers"] == speakers and info["self_pairs"] == 0
    if "LibriSpeech" in rel:
        assert info["balance"]["GENDER_MATCH"] == {"target =1": 18031, "nontarget =0": 9324, "nontarget =1": 9072}


def test_seed_lists_map_onto_a_corpus_copy():
    """The seed's .wav trial paths are rewritten to this copy's files; every row and label is kept."""
    import csv

    from layersv.data.corpora import librispeech, vctk

    lib = SHARED / "seed-data/UniPool-SV/data/LibriSpeech/preprocess/trials/trials-test.csv"
    vc = SHARED / "seed-data/UniPool-SV/data/VCTK-Corpus/preprocess/trials/trials-test.csv"
    if not (lib.is_file() and vc.is_file()):
        pytest.skip("seed lists not available (set LAYERSV_SHARED)")
    flac = lambda s: (Path(s).parent / Path(s).stem.split("-")[1] / f"{Path(s).stem}.flac").as_posix()  # noqa: E731
    present = {flac(r[c]) for r in csv.DictReader(open(lib)) for c in ("SAMPLE1", "SAMPLE2")}
    rows = librispeech._map_seed_trials(lib, present)
    assert len(rows) == 36427 and sum(int(r["LABEL"]) for r in rows) == 18031
    assert rows[0]["SAMPLE1"].endswith(".flac") and rows[0]["SAMPLE1"].count("/") == 3
    with pytest.raises(DatasetError, match="not in this LibriSpeech copy"):
        librispeech._map_seed_trials(lib, present - {rows[0]["SAMPLE1"]})
    keys = {}
    for r in csv.DictReader(open(vc)):
        for c in ("SAMPLE1", "SAMPLE2"):
            m = vctk._UTT.match(Path(r[c]).stem)
            keys[(m.group(1), int(m.group(2)))] = f"{m.group(1)}/{Path(r[c]).stem}_mic1.flac"
    rows = vctk._map_seed_trials(vc, keys)
    assert len(rows) == 16072 and sum(int(r["LABEL"]) for r in rows) == 8010
    assert all(r["SAMPLE1"].endswith("_mic1.flac") for r in rows)
