"""VoxCeleb 1 & 2 → dataset folder (LAP / voxceleb_trainer data preparation, seeds-spec §1.8, §4.8).

``SRC`` holds any of ``vox1_dev_wav``, ``vox1_test_wav``, ``vox2_dev_aac`` (or ``_wav``),
``vox2_test_aac`` (or ``_wav``), each ``[wav|aac/]idNNNNN/<video>/<utt>.{wav,m4a}``.  m4a is converted
to 16 kHz mono PCM-16 wav with ffmpeg (parallel, resumable: finished files are kept, partial ones are
written to a temporary name).  ``DATA_DIR/audio/<part>`` links to (or holds the converted) audio so
every path is ``<part>/idNNNNN/<video>/<utt>.wav``.

Trials: Vox1-O/E/H from the official lists in ``trial_dir`` (no network here): cleaned
(``veri_test2.txt``, ``list_test_all2.txt``, ``list_test_hard2.txt``) by default, original with
``cleaned=False``; test = Vox1-O, extra splits ``vox1_e`` / ``vox1_h``.  Valid = VoxCeleb2-test
balanced trials (positives half same-video, half different-video, VSRC_MATCH column) when present —
*not* the test lists (LAP selects checkpoints on the test trials).  Without VoxCeleb1-test (a
VoxCeleb2-only tree) the VoxCeleb2-test trials are the **test** trials and validation uses a
held-out split of the training speakers (``valid_speakers``); without VoxCeleb2-test, likewise.
Valid and test never share an utterance (``write_dataset`` refuses it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..dataset_folder import DatasetError, read_trials
from ..trials import balanced_trials
from .common import require_dir, split_speakers, write_dataset

PARTS = {"vox1_dev": ("vox1_dev_wav", "vox1_dev"), "vox1_test": ("vox1_test_wav", "vox1_test"),
         "vox2_dev": ("vox2_dev_aac", "vox2_dev_wav", "vox2_dev"),
         "vox2_test": ("vox2_test_aac", "vox2_test_wav", "vox2_test")}
LISTS = {"o": ("veri_test.txt", "veri_test2.txt"), "e": ("list_test_all.txt", "list_test_all2.txt"),
         "h": ("list_test_hard.txt", "list_test_hard2.txt")}
LISTS_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/"


def _speaker_root(d: Path) -> Path:
    """The folder holding the ``idNNNNN`` speaker folders (``d``, ``d/wav``, ``d/aac``, ``d/dev/aac``)."""
    for c in (d, d / "wav", d / "aac", d / "dev" / "aac", d / "test" / "aac", d / "dev" / "wav"):
        if c.is_dir() and any(p.name.startswith("id") and p.is_dir() for p in c.iterdir()):
            return c
    raise DatasetError(f"{d}: no idNNNNN speaker folders found (also looked in wav/, aac/)")


def find_parts(src: Path) -> dict[str, Path]:
    out = {}
    for part, names in PARTS.items():
        for n in names:
            if (src / n).is_dir():
                out[part] = _speaker_root(src / n)
                break
    if not out:
        raise DatasetError(f"{src}: none of {sorted(n for v in PARTS.values() for n in v)} found")
    return out


def _ffmpeg_one(ffmpeg: str, src: Path, dst: Path) -> str | None:
    if dst.is_file() and dst.stat().st_size > 44:
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.stem + ".part.wav")
    r = subprocess.run([ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-i", str(src), "-ac", "1", "-ar",
                        "16000", "-c:a", "pcm_s16le", str(tmp)], capture_output=True, text=True)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        return f"{src}: ffmpeg failed: {r.stderr.strip()[:200]}"
    os.replace(tmp, dst)
    return None


def convert_m4a(src_root: Path, dst_root: Path, workers: int = 4) -> int:
    """m4a → 16 kHz mono wav, mirroring the tree; returns the number of files converted or kept."""
    files = sorted(src_root.rglob("*.m4a"))
    if not files:
        return 0
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DatasetError(f"{len(files)} m4a file(s) under {src_root} need converting but ffmpeg is not "
                           "installed (apt-get install ffmpeg / conda install ffmpeg), or convert them to "
                           "16 kHz wav yourself and point SRC at the wav tree")
    with ThreadPoolExecutor(max(1, workers)) as ex:
        errs = [e for e in ex.map(lambda p: _ffmpeg_one(ffmpeg, p, dst_root / p.relative_to(src_root)
                                                        .with_suffix(".wav")), files) if e]
    if errs:
        raise DatasetError(f"{len(errs)} conversion(s) failed:\n  " + "\n  ".join(errs[:10]))
    return len(files)


def _link_or_convert(part: str, root: Path, audio: Path, workers: int) -> list[tuple[str, str, str]]:
    """Make ``audio/<part>`` and list ``(relative path, speaker, video)``."""
    dst = audio / part
    if any(root.rglob("*.m4a")):
        convert_m4a(root, dst, workers)
    else:
        if dst.is_symlink():
            dst.unlink()
        if not dst.exists():
            dst.symlink_to(root, target_is_directory=True)
    rows = [(p.relative_to(audio).as_posix(), p.parent.parent.name, p.parent.name)
            for p in sorted(dst.glob("id*/*/*.wav"))]
    if not rows:
        raise DatasetError(f"{root}: no id*/<video>/*.wav utterances")
    return rows


def _official_list(trial_dir: Path, which: str, cleaned: bool, spk_part: dict[str, str]) -> list[dict]:
    name = LISTS[which][1 if cleaned else 0]
    path = trial_dir / name
    if not path.is_file():
        raise DatasetError(f"{path} not found: download {name} from {LISTS_URL} (no network here) "
                           f"or pass --original to use {LISTS[which][0]}")
    t = read_trials(path)
    rows, missing = [], set()
    for lab, a, b in zip(t.labels, t.enroll, t.test):
        pa, pb = (f"{spk_part.get(x.split('/')[0], '?')}/{x}" for x in (a, b))
        missing |= {x for x, p in ((a, pa), (b, pb)) if p.startswith("?")}
        rows.append({"LABEL": int(lab), "SAMPLE1": pa, "SAMPLE2": pb})
    if missing:
        raise DatasetError(f"{path}: {len(missing)} file(s) of speakers absent from vox1_dev/vox1_test, "
                           f"e.g. {sorted(missing)[:3]}")
    return rows


def prepare_voxceleb(src: str | os.PathLike, data_dir: str | os.PathLike, trial_dir: str | os.PathLike | None = None,
                     cleaned: bool = True, train_parts: tuple[str, ...] = (), workers: int = 4,
                     n_trials: int = 64000, seed: int = 42, valid_speakers: int = 40) -> Path:
    """Write a VoxCeleb dataset folder (see the module docstring).

    ``train_parts`` default: ``vox2_dev`` if present (LAP), else ``vox1_dev``; minus ``valid_speakers``
    held-out speakers for validation unless both VoxCeleb1-test (test) and VoxCeleb2-test (valid) exist.
    """
    src = require_dir(src, "VoxCeleb folder")
    out = Path(data_dir).expanduser().resolve()
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    parts = find_parts(src)
    listed = {p: _link_or_convert(PARTS[p][0].replace("_aac", "_wav"), r, audio, workers) for p, r in parts.items()}
    train_parts = train_parts or (("vox2_dev",) if "vox2_dev" in listed else ("vox1_dev",))
    for p in train_parts:
        if p not in listed:
            raise DatasetError(f"training part {p} not found under {src} (found {sorted(listed)})")
    train = [{"path": r, "speaker": s, "video": v} for p in train_parts for r, s, v in listed[p]]
    extra, lists = {}, {}
    if "vox1_test" in listed:
        if trial_dir is None:
            raise DatasetError(f"VoxCeleb1 test trials need the official lists: pass --trials DIR holding "
                               f"{LISTS['o'][1]} (cleaned) or {LISTS['o'][0]} (from {LISTS_URL})")
        spk_part = {s: r.split("/", 1)[0] for p in ("vox1_dev", "vox1_test") for r, s, _ in listed.get(p, [])}
        test = _official_list(Path(trial_dir), "o", cleaned, spk_part)
        for w in ("e", "h"):
            if "vox1_dev" in listed and (Path(trial_dir) / LISTS[w][1 if cleaned else 0]).is_file():
                extra[f"vox1_{w}"] = _official_list(Path(trial_dir), w, cleaned, spk_part)
    elif "vox2_test" in listed:
        test = None
    else:
        raise DatasetError(f"{src}: no test part (vox1_test_wav or vox2_test_aac) found")
    vox2_trials = None
    if "vox2_test" in listed:
        utts = [(r, s) for r, s, _ in listed["vox2_test"]]
        vmeta = {r: {"VIDEO": f"{s}/{v}"} for r, s, v in listed["vox2_test"]}
        vox2_trials = balanced_trials(utts, n_trials // 2, n_trials // 2, seed, utt_meta=vmeta, target_keys=("VIDEO",))
        vox2_trials = [{**r, "VSRC_MATCH": r.pop("VIDEO_MATCH")} for r in vox2_trials]
    if vox2_trials is not None and test is not None:
        valid = vox2_trials
    else:  # select on a held-out split of the training speakers, never on the test trials
        test = test if test is not None else vox2_trials
        spk = sorted({r["speaker"] for r in train})
        if len(spk) < 3:
            raise DatasetError(f"{len(spk)} training speaker(s): too few to hold some out for validation")
        f = min(valid_speakers, max(2, len(spk) // 3)) / len(spk)
        tr, va, _ = split_speakers(spk, (1 - f, f, 0.0), seed)
        held = [(r["path"], r["speaker"]) for r in train if r["speaker"] in set(va)]
        train = [r for r in train if r["speaker"] in set(tr)]
        valid = balanced_trials(held, n_trials // 8, n_trials // 8, seed)
        lists["valid.csv"] = [{"path": p, "speaker": s} for p, s in held]
    if "vox2_dev" in listed and "vox2_dev" not in train_parts:
        lists["cohort.csv"] = [{"path": r, "speaker": s} for r, s, _ in listed["vox2_dev"]]
    elif "vox2_dev" in listed:
        lists["cohort.csv"] = [{"path": r["path"], "speaker": r["speaker"]} for r in train]
    return write_dataset(out, "voxceleb", "audio", 16000, train, valid, test, lists=lists, extra_trials=extra,
                         meta={"corpus": "VoxCeleb", "parts": sorted(listed), "train_parts": list(train_parts),
                               "vox1_lists": ("cleaned" if cleaned else "original") if "vox1_test" in listed else None})
