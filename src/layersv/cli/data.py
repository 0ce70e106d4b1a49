"""``layersv prepare <corpus> SRC DATA_DIR``, ``layersv check DATA``, ``layersv trials-info FILE...``."""

from __future__ import annotations

import argparse
import sys

from ..data.corpora import PREPARERS, download
from ..data.dataset_folder import check_dataset, open_dataset, usability_notes
from ..data.rir_bank import BankParams, bank_folder, open_rir_bank
from ..data.trials import format_trials_info, trials_info


def add_parsers(sub) -> None:
    p = sub.add_parser("prepare", help="turn a corpus folder into a dataset folder (or a noise/RIR list)")
    p.set_defaults(handler=cmd_prepare)
    cs = p.add_subparsers(dest="corpus", required=True)

    def corpus(name: str, help_: str) -> argparse.ArgumentParser:
        c = cs.add_parser(name, help=help_)
        c.add_argument("src", help="corpus folder (already downloaded and extracted)")
        c.add_argument("data_dir", help="dataset folder to write")
        c.add_argument("--download", action="store_true", help="download SRC first with lhotse (needs network)")
        return c

    c = corpus("vctk", "VCTK 0.80 (wav48) or 0.92 (wav48_silence_trimmed)")
    c.add_argument("--mic", default="mic1", choices=("mic1", "mic2"), help="0.92 microphone")
    c.add_argument("--write-16k", action="store_true", help="write 16 kHz wavs into DATA_DIR/wav16 (else on the fly)")
    c.add_argument("--seed-dir", default=None, help="UniPool-SV data/VCTK-Corpus/preprocess: use its split and trials")
    c.add_argument("--seed", type=int, default=42)
    c.add_argument("--workers", type=int, default=4)
    c = corpus("librispeech", "LibriSpeech (any of the seven subsets)")
    c.add_argument("--seed-dir", default=None, help="UniPool-SV data/LibriSpeech/preprocess: use its trials")
    c.add_argument("--seed", type=int, default=42)
    c = corpus("voxceleb", "VoxCeleb 1 & 2 (vox1_dev_wav, vox1_test_wav, vox2_dev_aac, vox2_test_aac)")
    c.add_argument("--trials", default=None, help="folder holding veri_test2.txt / list_test_all2.txt / ...")
    c.add_argument("--original", action="store_true", help="use the original (not cleaned) Vox1 lists")
    c.add_argument("--train-parts", default="", help="comma list of vox1_dev,vox2_dev (default vox2_dev if present)")
    c.add_argument("--workers", type=int, default=4, help="parallel ffmpeg conversions")
    c.add_argument("--seed", type=int, default=42)
    c = corpus("musan", "MUSAN → 5 s / 3 s-hop segment list")
    c.add_argument("--chunk", type=float, default=5.0)
    c.add_argument("--hop", type=float, default=3.0)
    corpus("rir", "RIRS_NOISES → RIR list")
    c = cs.add_parser("rir-bank", help="simulate a seeded bank of room impulse responses into DATA_DIR/rir_bank "
                      "(augmentation kind sim_reverb; needs the `augment` extra)")
    c.add_argument("data_dir", help="dataset folder (the bank goes to DATA_DIR/rir_bank)")
    c.add_argument("--n_rooms", type=int, default=200)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--sample_rate", type=int, default=16000)
    c.add_argument("--out", default="", help="bank folder (default DATA_DIR/rir_bank)")
    c = corpus("folder", "root/<speaker>/**/*.{wav,flac,ogg,opus,mp3}")
    c.add_argument("--split", default="0.8,0.1,0.1",
                   help="train,valid,test fractions of the speakers with 2+ recordings (the others train)")
    c.add_argument("--metadata", default=None,
                   help="speaker metadata CSV (speaker,gender,...); default: metadata.csv in SRC or its parent")
    c.add_argument("--trials", type=int, default=20000, help="trials per split (half target)")
    c.add_argument("--seed", type=int, default=42)

    k = sub.add_parser("check", help="validate a dataset folder: every listed file, trial lists; warnings")
    k.add_argument("data", help="dataset folder")
    k.add_argument("--sample_rate", type=int, default=16000, help="the model's rate (files at others are resampled)")
    k.add_argument("--crop_sec", type=float, default=3.0, help="training crop (shorter files are padded)")
    k.set_defaults(handler=cmd_check)

    t = sub.add_parser("trials-info", help="counts, targets, speakers and balance of trial lists")
    t.add_argument("files", nargs="+")
    t.set_defaults(handler=cmd_trials_info)


def cmd_prepare(a) -> int:
    if a.corpus == "rir-bank":
        bank = open_rir_bank(bank_folder(a.data_dir, a.out), BankParams(a.n_rooms, a.seed, a.sample_rate),
                             progress=True)
        print(f"RIR bank {bank.path}: {len(bank)} rooms, seed {a.seed}, {bank.data.nbytes / 2**20:.1f} MiB")
        return 0
    if a.download:
        download(a.corpus, a.src)
    kw = {"vctk": lambda: dict(mic=a.mic, write_16k=a.write_16k, seed_dir=a.seed_dir, seed=a.seed, workers=a.workers),
          "librispeech": lambda: dict(seed_dir=a.seed_dir, seed=a.seed),
          "voxceleb": lambda: dict(trial_dir=a.trials, cleaned=not a.original, workers=a.workers, seed=a.seed,
                                   train_parts=tuple(x for x in a.train_parts.split(",") if x)),
          "musan": lambda: dict(chunk_sec=a.chunk, hop_sec=a.hop), "rir": lambda: {},
          "folder": lambda: dict(fractions=_fractions(a.split), n_trials=a.trials, seed=a.seed,
                                 metadata=a.metadata)}[a.corpus]()
    out = PREPARERS[a.corpus](a.src, a.data_dir, **kw)
    print(f"wrote {out}")
    return 0


def _fractions(s: str) -> tuple[float, float, float]:
    try:
        f = tuple(float(x) for x in s.split(","))
    except ValueError:
        raise ValueError(f"--split: expected three numbers like 0.8,0.1,0.1, got {s!r}") from None
    if len(f) != 3:
        raise ValueError(f"--split: expected three numbers like 0.8,0.1,0.1, got {s!r}")
    return f  # type: ignore[return-value]


def cmd_check(a) -> int:
    ds = open_dataset(a.data)
    splits = tuple(s for s in ("valid", "test") if ds.has_trials(s) or s == "test")
    infos = check_dataset(ds, splits)
    for note in usability_notes(infos, a.sample_rate, a.crop_sec):
        print(f"layersv: warning: {note}", file=sys.stderr)
    print(f"{ds.root}: ok — {len(ds.train)} training files, {len(ds.speakers)} speakers, "
          f"{len(infos)} files checked ({', '.join(splits)} trials)")
    return 0


def cmd_trials_info(a) -> int:
    for f in a.files:
        print(format_trials_info(trials_info(f)))
    return 0
