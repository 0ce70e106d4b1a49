"""Dataset folders: trial parsing, deterministic crops, length buckets, bad input caught up front."""

import shutil

import numpy as np
import pytest
import soundfile as sf

from layersv.data.audio import AudioError, load_audio
from layersv.data.dataset import TrainCrops, length_buckets
from layersv.data.dataset_folder import DatasetError, check_dataset, open_dataset, read_trials


def copy_data(tiny_data, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(tiny_data, dst)
    return dst


def test_read_trials_csv_and_voxceleb_txt(tmp_path):
    (tmp_path / "t.csv").write_text("LABEL,SAMPLE1,SAMPLE2,GENDER_MATCH\n1,a.wav,b.wav,1\n0,a.wav,c.wav,0\n")
    t = read_trials(tmp_path / "t.csv")
    assert t.labels.tolist() == [1, 0] and t.enroll == ["a.wav", "a.wav"] and t.utterances == ["a.wav", "b.wav", "c.wav"]
    (tmp_path / "v.txt").write_text("1 id1/a.wav id1/b.wav\n0 id1/a.wav id2/c.wav\n")
    assert read_trials(tmp_path / "v.txt").labels.tolist() == [1, 0]
    (tmp_path / "bad.txt").write_text("1 a.wav\n")
    with pytest.raises(DatasetError, match="bad.txt:1"):
        read_trials(tmp_path / "bad.txt")


def test_missing_and_corrupt_files_are_listed_before_training(tiny_data, tmp_path):
    d = copy_data(tiny_data, tmp_path)
    ds = open_dataset(d)
    first, second = ds.train[0][0], ds.train[1][0]
    ds.abspath(first).unlink()
    ds.abspath(second).write_bytes(b"RIFF garbage")
    with pytest.raises(DatasetError) as e:
        check_dataset(open_dataset(d))
    msg = str(e.value)
    assert "2 problem(s)" in msg and first in msg and second in msg
    assert "file not found" in msg and "unreadable" in msg


def test_empty_trial_list_is_an_error(tiny_data, tmp_path):
    d = copy_data(tiny_data, tmp_path)
    (d / "test_trials.csv").write_text("LABEL,SAMPLE1,SAMPLE2\n")
    with pytest.raises(DatasetError, match="empty trial list"):
        check_dataset(open_dataset(d))


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match="no data.yaml"):
        open_dataset(tmp_path)


def test_load_audio_mixdown_resample_and_errors(tmp_path):
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1).astype(np.float32)
    sf.write(tmp_path / "s.wav", stereo, 8000)
    wav = load_audio(tmp_path / "s.wav", 16000)
    assert wav.ndim == 1 and abs(len(wav) - 16000) <= 2
    assert np.abs(wav).max() == pytest.approx(0.5, abs=0.02)  # mean of the two channels
    with pytest.raises(AudioError, match="too short"):
        load_audio(tmp_path / "s.wav", 16000, min_duration_sec=5.0)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_train_crops_are_deterministic_and_wrap_padded(tiny_data):
    ds = open_dataset(tiny_data)
    infos = check_dataset(ds)
    files = [(str(ds.abspath(p)), p) for p, _ in ds.train]
    crops = TrainCrops(files, list(range(len(files))), infos, 16000, 3.0, seed=5)
    a, b = crops[7], crops[7]
    assert np.array_equal(a[0], b[0]) and len(a[0]) == 48000  # clips are ≤ 2 s: wrap-padded to 3 s
    assert sorted(crops.utterance_of(k) for k in range(len(files))) == list(range(len(files)))


def test_length_buckets_respect_the_budget():
    durs = [1.0, 5.0, 2.0, 2.5, 9.0, 0.5]
    batches = length_buckets(durs, budget_sec=10.0)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) == 1 or max(durs[i] for i in b) * len(b) <= 10.0
