"""Corpus preparers on tiny fake corpus trees (synthetic audio written with soundfile)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from layersv.cli import main
from layersv.data.corpora import download, prepare_folder, prepare_librispeech, prepare_musan, prepare_rir, \
    prepare_vctk, prepare_voxceleb
from layersv.data.dataset_folder import DatasetError, open_dataset
from layersv.data.trials import check_trials


def tone(path: Path, sr: int, sec: float = 0.3, f0: float = 220.0, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * sec)) / sr
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), sr, format=fmt)


def rows(p: Path) -> list[dict]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


VCTK_INFO = [("225", 23, "F", "English", "Southern England"), ("226", 22, "M", "English", "Surrey"),
             ("227", 38, "M", "English", "Cumbria"), ("228", 22, "F", "English", "Southern England"),
             ("229", 23, "F", "Scottish", "Fife"), ("230", 22, "M", "Scottish", "Edinburgh"),
             ("231", 23, "F", "Irish", "Dublin"), ("232", 24, "M", "Irish", "Cork"),
             ("233", 40, "F", "American", "Ohio"), ("234", 31, "M", "American", "Texas"),
             ("280", 25, "F", "French", "Paris"), ("315", 23, "M", "American", "Connecticut")]


def make_vctk(root: Path, layout: str) -> Path:
    new = layout == "0.92"
    lines = ["ID  AGE  GENDER  ACCENTS  REGION  COMMENTS"] if new else ["ID  AGE  GENDER  ACCENTS  REGION"]
    for i, age, g, acc, reg in VCTK_INFO:
        lines.append(f"{'p' if new else ''}{i}  {age}  {g}    {acc}    {reg}" + ("  (mic2 files unavailable)" if i == "280" and new else ""))
    root.mkdir(parents=True)
    (root / "speaker-info.txt").write_text("\n".join(lines) + "\n")
    for k, (i, *_) in enumerate(VCTK_INFO):
        for n in (1, 24, 25, 26, 27, 30):
            stem = f"p{i}_{n:03d}"
            if new:
                tone(root / "wav48_silence_trimmed" / f"p{i}" / f"{stem}_mic1.flac", 48000, 0.2, 100 + 20 * k)
                if i != "280":
                    tone(root / "wav48_silence_trimmed" / f"p{i}" / f"{stem}_mic2.flac", 48000, 0.2, 100 + 20 * k)
            else:
                tone(root / "wav48" / f"p{i}" / f"{stem}.wav", 48000, 0.2, 100 + 20 * k)
    return root


@pytest.mark.parametrize("layout", ["0.80", "0.92"])
def test_vctk_layouts(tmp_path, layout):
    src = make_vctk(tmp_path / "vctk", layout)
    out = prepare_vctk(src, tmp_path / "data", mic="mic2" if layout == "0.92" else "mic1", n_target=20, n_nontarget=40)
    ds = open_dataset(out)
    meta = yaml.safe_load((out / "data.yaml").read_text())
    spk = {r["speaker"] for r in rows(out / "speakers.csv")}
    assert "p315" not in spk and "p315" in meta["dropped_speakers"]
    assert ("p280" in spk) == (layout == "0.80")  # mic2 of p280 is missing in 0.92
    utts = [p for p, _ in ds.train] + [r["path"] for r in rows(out / "valid.csv") + rows(out / "test.csv")]
    assert all(int(Path(p).stem.split("_")[1]) >= 25 for p in utts)
    assert len(utts) == 4 * len(spk)
    splits = [{r["speaker"] for r in rows(out / f)} for f in ("train.csv", "valid.csv", "test.csv")]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    for s in ("valid", "test"):
        t = ds.trials(s)
        check_trials(out / f"{s}_trials.csv")
        assert set(t.labels) == {0, 1}
        assert {"GENDER_MATCH", "ACCENT_MATCH", "AGE_MATCH"} <= set(rows(out / f"{s}_trials.csv")[0])
        assert all(ds.abspath(p).is_file() for p in t.utterances)
    assert meta["sample_rate"] == 48000
    # identical output on a second run (deterministic)
    out2 = prepare_vctk(src, tmp_path / "data2", mic="mic2" if layout == "0.92" else "mic1", n_target=20, n_nontarget=40)
    assert (out / "test_trials.csv").read_text() == (out2 / "test_trials.csv").read_text()


def test_vctk_write_16k_and_errors(tmp_path):
    src = make_vctk(tmp_path / "vctk", "0.92")
    out = prepare_vctk(src, tmp_path / "data", write_16k=True, n_target=10, n_nontarget=10, workers=2)
    ds = open_dataset(out)
    p = ds.abspath(ds.train[0][0])
    assert p.suffix == ".wav" and sf.info(str(p)).samplerate == 16000 and sf.info(str(p)).frames == 3200
    with pytest.raises(DatasetError, match="neither wav48"):
        prepare_vctk(tmp_path / "data", tmp_path / "x")
    (src / "speaker-info.txt").unlink()
    with pytest.raises(DatasetError, match="speaker metadata not found"):
        prepare_vctk(src, tmp_path / "x")


SPEAKERS = """; comment
;ID  |SEX| SUBSET           |MINUTES| NAME
{rows}
"""


def make_librispeech(root: Path) -> Path:
    lines, k = [], 0
    for subset, n_spk in (("train-clean-100", 3), ("dev-clean", 4), ("dev-other", 2), ("test-clean", 4), ("test-other", 2)):
        for s in range(n_spk):
            spk, k = str(100 + k), k + 1
            lines.append(f"{spk:<5}| {'F' if k % 2 else 'M'} | {subset:<16} | 25.03 | Reader {spk}")
            for u in range(4):
                tone(root / subset / spk / "7" / f"{spk}-7-{u:04d}.flac", 16000, 0.2, 100 + 15 * k)
    (root / "SPEAKERS.TXT").write_text(SPEAKERS.format(rows="\n".join(lines)))
    return root


def test_librispeech(tmp_path):
    src = make_librispeech(tmp_path / "LibriSpeech")
    out = prepare_librispeech(src, tmp_path / "data", n_target=30, n_nontarget=60)
    ds = open_dataset(out)
    assert len(ds.speakers) == 3 and all(p.startswith("train-clean-100/") for p, _ in ds.train)
    for s, prefix in (("valid", "dev-"), ("test", "test-")):
        t = ds.trials(s)
        check_trials(out / f"{s}_trials.csv")
        assert all(p.startswith(prefix) and p.endswith(".flac") for p in t.utterances)
        r = rows(out / f"{s}_trials.csv")
        neg = [x["GENDER_MATCH"] for x in r if x["LABEL"] == "0"]
        assert abs(neg.count("1") - neg.count("0")) <= 0.25 * len(neg)
    assert rows(out / "speakers.csv")[0]["gender"] in ("F", "M")


def make_vox(root: Path) -> Path:
    for part, ids in (("vox1_dev_wav", range(10001, 10005)), ("vox1_test_wav", range(10270, 10273)),
                      ("vox2_test_aac", range(20001, 20004))):
        for i in ids:
            for v in ("vidA", "vidB"):
                for u in (1, 2):
                    tone(root / part / f"id{i}" / v / f"{u:05d}.wav", 16000, 0.2, 50 + i % 100 * 7)
    trials = root / "trials"
    trials.mkdir()
    (trials / "veri_test2.txt").write_text("1 id10270/vidA/00001.wav id10270/vidB/00002.wav\n"
                                           "0 id10270/vidA/00001.wav id10271/vidA/00001.wav\n")
    (trials / "list_test_hard2.txt").write_text("1 id10001/vidA/00001.wav id10001/vidB/00001.wav\n"
                                                "0 id10001/vidA/00001.wav id10272/vidA/00001.wav\n")
    return root


def test_voxceleb(tmp_path):
    src = make_vox(tmp_path / "vox")
    out = prepare_voxceleb(src, tmp_path / "data", trial_dir=src / "trials", n_trials=40)
    ds = open_dataset(out)
    t = ds.trials("test")
    assert t.enroll[0] == "vox1_test_wav/id10270/vidA/00001.wav" and ds.abspath(t.test[0]).is_file()
    h = ds.trials("vox1_h")
    assert h.enroll[0].startswith("vox1_dev_wav/") and h.test[1].startswith("vox1_test_wav/")
    v = rows(out / "valid_trials.csv")  # VoxCeleb2-test trials with same/different video
    check_trials(out / "valid_trials.csv")
    pos = [r["VSRC_MATCH"] for r in v if r["LABEL"] == "1"]
    assert pos.count("1") > 0 and pos.count("0") > 0
    assert all(r["VSRC_MATCH"] == "0" for r in v if r["LABEL"] == "0")
    assert all(p.startswith("vox1_dev_wav/") for p, _ in ds.train)  # no vox2_dev: vox1 dev trains
    with pytest.raises(DatasetError, match="veri_test.txt not found"):
        prepare_voxceleb(src, tmp_path / "d2", trial_dir=src / "trials", cleaned=False)
    with pytest.raises(DatasetError, match="official lists"):
        prepare_voxceleb(src, tmp_path / "d3")


def test_voxceleb_m4a_needs_ffmpeg(tmp_path, monkeypatch):
    src = tmp_path / "vox"
    (src / "vox2_test_aac" / "id20001" / "v").mkdir(parents=True)
    (src / "vox2_test_aac" / "id20001" / "v" / "00001.m4a").write_bytes(b"\0" * 100)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(DatasetError, match="ffmpeg is not installed"):
        prepare_voxceleb(src, tmp_path / "data")


def test_folder_and_cli(tmp_path, capsys):
    src = tmp_path / "mine"
    for s in range(10):
        for u in range(3):
            tone(src / f"spk{s}" / "sess" / f"u{u}.{'flac' if u else 'wav'}", 16000, 0.2, 100 + 30 * s)
    tone(src / "spk_lonely" / "a.wav", 16000)
    (src / "stray.wav").write_bytes(b"")
    assert main(["prepare", "folder", str(src), str(tmp_path / "data"), "--split", "0.6,0.2,0.2", "--trials", "40"]) == 0
    out = capsys.readouterr().out
    assert "7 train (1 with a single recording), 2 valid, 2 test" in out
    ds = open_dataset(tmp_path / "data")
    # a speaker with one recording cannot give a target trial, but is a training class
    assert len(ds.speakers) == 7 and "spk_lonely" in ds.speakers
    assert main(["trials-info", str(tmp_path / "data" / "test_trials.csv")]) == 0
    assert "0 self-pairs, 0 duplicate pairs" in capsys.readouterr().out
    assert main(["prepare", "folder", str(src), str(tmp_path / "d"), "--split", "0.5,0.5"]) == 2
    with pytest.raises(DatasetError, match="too few"):
        prepare_folder(src, tmp_path / "d", fractions=(0.0, 0.5, 0.5))


def test_folder_every_soundfile_format_and_gender_balance(tmp_path):
    """Ogg Vorbis / Opus, FLAC, WAV (and MP3 where libsndfile has it) are listed; metadata.csv balances."""
    fmts = [("ogg", "OGG"), ("opus", "OGG"), ("flac", "FLAC"), ("wav", "WAV")]
    if "MP3" in sf.available_formats():
        fmts.append(("mp3", "MP3"))
    src = tmp_path / "corpus" / "opus"
    meta = ["path,speaker,gender"]
    for s in range(20):
        for u, (ext, fmt) in enumerate(fmts):
            sub = "OPUS" if ext == "opus" else None
            p = src / f"s{s:02d}" / f"u{u}.{ext}"
            p.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(int(48000 * 0.3)) / 48000
            sf.write(str(p), (0.1 * np.sin(2 * np.pi * (100 + 20 * s) * t)).astype(np.float32), 48000,
                     format=fmt, subtype=sub)
            meta.append(f"{p.relative_to(src.parent)},s{s:02d},{'F' if s % 2 else 'M'}")
    (src.parent / "metadata.csv").write_text("\n".join(meta) + "\n")
    out = prepare_folder(src, tmp_path / "data", fractions=(0.4, 0.3, 0.3), n_trials=400, verbose=False)
    info = yaml.safe_load((out / "data.yaml").read_text())
    assert info["name"] == "corpus" and info["trials_balanced_on"] == "gender"
    assert info["train_speakers"] == 8 and info["valid_speakers"] == 6 and info["test_speakers"] == 6
    tr = rows(out / "train.csv")
    assert {Path(r["path"]).suffix[1:] for r in tr} == {e for e, _ in fmts}
    assert {r["gender"] for r in tr} == {"F", "M"}
    va = rows(out / "valid_trials.csv")
    non = [r for r in va if r["LABEL"] == "0"]
    same = sum(r["gender_MATCH"] == "1" for r in non)
    assert 0 < same < len(non) and abs(2 * same - len(non)) <= 0.2 * len(non)  # both strata, about even


def test_folder_single_recording_speakers(tmp_path):
    """251 speakers with one file each: all can train; valid/test fall back to halves (flagged)."""
    src = tmp_path / "flac"
    for s in range(20):
        tone(src / f"{s:04d}" / f"{s:04d}-1.flac", 16000, 1.0, 100 + 15 * s)
    with pytest.warns(UserWarning, match="halves of ONE recording"):
        out = prepare_folder(src, tmp_path / "data", n_trials=100, verbose=False)
    info = yaml.safe_load((out / "data.yaml").read_text())
    assert info["trials_from_halves"] is True and info["train_speakers"] == 16
    ds = open_dataset(out)
    t = ds.trials("valid")
    assert t.labels.sum() == 2 and len(t.labels) > 2  # one target (the two halves) per valid speaker
    assert all(Path(p).is_file() for p in t.utterances)


def test_musan_rir(tmp_path):
    m = tmp_path / "musan"
    tone(m / "noise" / "free-sound" / "n1.wav", 16000, 11.0)
    tone(m / "music" / "a" / "m1.wav", 16000, 2.0)
    tone(m / "speech" / "b" / "s1.wav", 16000, 5.0)
    r = rows(prepare_musan(m, tmp_path / "mlist") / "musan.csv")
    n1 = [x for x in r if x["category"] == "noise"]
    assert [float(x["start_s"]) for x in n1] == [0.0, 3.0, 6.0] and all(float(x["duration_s"]) == 5.0 for x in n1)
    assert [x["duration_s"] for x in r if x["category"] == "music"] == ["2.0"]
    rr = tmp_path / "RIRS_NOISES"
    tone(rr / "simulated_rirs" / "smallroom" / "Room001" / "Room001-00001.wav", 16000, 0.1)
    tone(rr / "real_rirs_isotropic_noises" / "air_type1_air_binaural_stairway_1_1_rir.wav", 16000, 0.1)
    tone(rr / "real_rirs_isotropic_noises" / "RVB2014_type1_noise_largeroom1_1.wav", 16000, 0.1)
    lst = rows(prepare_rir(tmp_path, tmp_path / "rlist") / "rir.csv")
    assert [x["kind"] for x in lst] == ["simulated", "real"] and lst[0]["room"] == "smallroom"
    (m / "noise" / "free-sound" / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(DatasetError, match="unreadable MUSAN"):
        prepare_musan(m, tmp_path / "mlist2")


def test_download_without_network_is_clear(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="manual step"):
        download("voxceleb", tmp_path)
    with pytest.raises(DatasetError, match="no downloader"):
        download("timit", tmp_path)


def test_voxceleb2_only_selects_on_held_out_training_speakers(tmp_path):
    src = tmp_path / "vox"
    for part, ids in (("vox2_dev_aac", range(20101, 20107)), ("vox2_test_aac", range(20001, 20004))):
        for i in ids:
            for v in ("vidA", "vidB"):
                for u in (1, 2):
                    tone(src / part / f"id{i}" / v / f"{u:05d}.wav", 16000, 0.2, 50 + i % 100 * 7)
    out = prepare_voxceleb(src, tmp_path / "data", n_trials=40, valid_speakers=2)
    ds = open_dataset(out)
    spk = lambda p: p.split("/")[1]  # noqa: E731  <part>/idNNNNN/<video>/<utt>.wav
    valid = {spk(p) for p in ds.trials("valid").utterances}
    test = {spk(p) for p in ds.trials("test").utterances}
    train = {s for _, s in ds.train}
    assert test == {"id20001", "id20002", "id20003"}  # VoxCeleb2-test is the test set
    assert len(valid) == 2 and valid <= {f"id{i}" for i in range(20101, 20107)}  # held-out training speakers
    assert not valid & test and not valid & train and not test & train
    assert len(train) == 4


def test_valid_and_test_that_coincide_are_refused(tmp_path):
    from layersv.data.corpora.common import write_dataset
    from layersv.data.dataset_folder import check_dataset

    trials = [{"LABEL": 1, "SAMPLE1": "a/1.wav", "SAMPLE2": "a/2.wav"},
              {"LABEL": 0, "SAMPLE1": "a/1.wav", "SAMPLE2": "b/1.wav"}]
    with pytest.raises(DatasetError, match="share 3 utterance"):
        write_dataset(tmp_path / "d", "x", tmp_path, 16000, [{"path": "c/1.wav", "speaker": "c"}], trials, trials)
    # a hand-written folder is checked before a run starts
    d = tmp_path / "hand"
    d.mkdir()
    for sp in ("a", "b", "c"):
        for u in (1, 2):
            tone(d / "audio" / sp / f"{u}.wav", 16000, 0.3)
    (d / "data.yaml").write_text("name: hand\naudio_root: audio\nsample_rate: 16000\n")
    (d / "train.csv").write_text("path,speaker\nc/1.wav,c\nc/2.wav,c\n")
    text = "LABEL,SAMPLE1,SAMPLE2\n1,a/1.wav,a/2.wav\n0,a/1.wav,b/1.wav\n"
    (d / "valid_trials.csv").write_text(text)
    (d / "test_trials.csv").write_text(text)
    with pytest.raises(DatasetError, match="selected on the test set"):
        check_dataset(open_dataset(d))
