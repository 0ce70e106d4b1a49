"""Build a layersv dataset folder from librispeech-train251 (251 speakers, ONE utterance each).

    python recipes/folder/make_librispeech251.py /work/shared/data/librispeech-train251 data/ls251 \
        [--split 171,40,40] [--parts 2] [--part_sec 3] [--train_max_sec 4] [--seed 0]

* Speakers are split speaker-disjointly into train / valid / test (seeded, each split gets the
  same share of female and male speakers as the corpus).
* train.csv: each training speaker's single utterance (its first ``--train_max_sec`` seconds when
  > 0, written as wav: a compute cut for CPU runs; 0 = whole utterances).  cohort.csv = train.csv.
* valid/test: each speaker's single utterance is cut into ``--parts`` consecutive equal parts (the
  first ``--part_sec`` seconds of each part when > 0), written as wav files.  Target trials = pairs
  of parts of the same utterance; non-target trials = every pair of parts of two different speakers.

What these trials cannot show: every target trial compares two stretches of ONE recording (same
session, channel, text chapter and recording day), so they measure within-recording consistency,
not robustness to a new session; and every training speaker has a single recording, so a trained
classifier can learn recordings instead of speakers without these trials revealing it.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
from pathlib import Path

import numpy as np
import soundfile as sf


def split_speakers(meta: list[dict], sizes: tuple[int, int, int], seed: int) -> list[list[str]]:
    """Speaker-disjoint, gender-stratified split into ``sizes`` (train, valid, test) speaker lists."""
    rng = np.random.default_rng(seed)
    by_g: dict[str, list[str]] = {}
    for r in meta:
        by_g.setdefault(r["gender"], []).append(r["speaker"])
    total = sum(len(v) for v in by_g.values())
    if sum(sizes) > total:
        raise ValueError(f"split {sizes} needs {sum(sizes)} speakers, the corpus has {total}")
    out: list[list[str]] = [[], [], []]
    for g, spk in sorted(by_g.items()):
        spk = [spk[i] for i in rng.permutation(len(spk))]
        share = [round(n * len(spk) / total) for n in sizes]
        start = 0
        for i, n in enumerate(share):
            out[i] += spk[start : start + n]
            start += n
    pool = sorted(set(r["speaker"] for r in meta) - set(itertools.chain(*out)))
    pool = [pool[i] for i in rng.permutation(len(pool))]
    for i, n in enumerate(sizes):  # fix rounding so each split has exactly sizes[i] speakers
        while len(out[i]) > n:
            pool.append(out[i].pop())
        while len(out[i]) < n:
            out[i].append(pool.pop())
    return [sorted(x) for x in out]


def write_wav(path: Path, wav: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, sr, subtype="PCM_16")


def csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="librispeech-train251 folder (metadata.csv, flac/)")
    ap.add_argument("out", help="dataset folder to write")
    ap.add_argument("--split", default="171,40,40", help="train,valid,test speaker counts")
    ap.add_argument("--parts", type=int, default=2, help="parts per valid/test utterance (>= 2)")
    ap.add_argument("--part_sec", type=float, default=3.0, help="keep the first seconds of each part (0 = all)")
    ap.add_argument("--train_max_sec", type=float, default=4.0, help="first seconds of each train utt (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    src, out = Path(a.src), Path(a.out)
    sizes = tuple(int(x) for x in a.split.split(","))
    if len(sizes) != 3 or a.parts < 2:
        raise SystemExit("--split needs three counts and --parts at least 2")
    with open(src / "metadata.csv", newline="") as f:
        meta = list(csv.DictReader(f))
    if len({r["speaker"] for r in meta}) != len(meta):
        raise SystemExit("expected one utterance per speaker")
    row = {r["speaker"]: r for r in meta}
    train, valid, test = split_speakers(meta, sizes, a.seed)
    out.mkdir(parents=True, exist_ok=True)
    tr_rows = []
    for s in train:
        wav, sr = sf.read(src / row[s]["path"], dtype="float32")
        if a.train_max_sec > 0:
            wav = wav[: int(a.train_max_sec * sr)]
        rel = f"train/{s}/{row[s]['utt_id']}.wav"
        write_wav(out / rel, wav, sr)
        tr_rows.append([rel, s, f"{len(wav) / sr:.3f}", row[s]["gender"]])
    (out / "train.csv").write_text(csv_text(["path", "speaker", "duration_s", "gender"], tr_rows))
    (out / "cohort.csv").write_text(csv_text(["path", "speaker"], [r[:2] for r in tr_rows]))
    for name, spks in (("valid", valid), ("test", test)):
        parts: list[tuple[str, str]] = []
        for s in spks:
            wav, sr = sf.read(src / row[s]["path"], dtype="float32")
            n = len(wav) // a.parts
            for j in range(a.parts):
                seg = wav[j * n : (j + 1) * n]
                if a.part_sec > 0:
                    seg = seg[: int(a.part_sec * sr)]
                rel = f"{name}/{s}/{row[s]['utt_id']}_part{j}.wav"
                write_wav(out / rel, seg, sr)
                parts.append((rel, s))
        trials = [[int(sa == sb), pa, pb, "same-recording" if sa == sb else "different-speaker"]
                  for (pa, sa), (pb, sb) in itertools.combinations(parts, 2)]
        (out / f"{name}_trials.csv").write_text(csv_text(["LABEL", "SAMPLE1", "SAMPLE2", "KIND"], trials))
    (out / "data.yaml").write_text(
        f"name: librispeech251\naudio_root: .\nsample_rate: 16000\n"
        f"source: {src.resolve()}\nsplit_speakers: {{train: {len(train)}, valid: {len(valid)}, test: {len(test)}}}\n"
        f"seed: {a.seed}\ntrain_max_sec: {a.train_max_sec}\nparts: {a.parts}\npart_sec: {a.part_sec}\n"
        "trials: 'targets = parts of one utterance (same recording); non-targets = parts of different speakers'\n")
    print(f"{out}: train {len(train)} speakers, valid {len(valid)}, test {len(test)} "
          f"({a.parts} parts each, {len(valid) * a.parts * (len(valid) * a.parts - 1) // 2} trials per split)")


if __name__ == "__main__":
    main()
