"""Speaker database, enrol → identify round trip, model identity, CLI, and index vs exact search."""

import sqlite3
import threading

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

import layersv
from layersv.cli import main
from layersv.enrol import DatabaseError, ModelMismatch, Recognizer
from layersv.enrol.index import ExactIndex, build_index
from layersv.runs import verify as verify_pair


def _wavs(tiny_data, spk):
    return sorted((tiny_data / "wav" / spk).glob("*.wav"))


def _speakers(tiny_data):
    return sorted(p.name for p in (tiny_data / "wav").iterdir())


@pytest.fixture(scope="module")
def enrolled(fbank_stats_run, tiny_data, tmp_path_factory):
    """Every corpus speaker enrolled with its first two recordings (the other two are held out)."""
    rec = Recognizer(fbank_stats_run, tmp_path_factory.mktemp("db") / "speakers.sqlite")
    for s in _speakers(tiny_data):
        rec.enroll(s, _wavs(tiny_data, s)[:2])
    return rec


def test_identify_ranks_the_enrolled_speaker_first(enrolled, tiny_data):
    spks = _speakers(tiny_data)
    hits = n = 0
    for s in spks:
        for f in _wavs(tiny_data, s)[2:]:
            r = enrolled.identify(f, top=3)
            assert [row["score"] for row in r["top"]] == sorted((row["score"] for row in r["top"]), reverse=True)
            assert r["stage"] == "qmf" and r["calibrated"] and r["enrolled"] == len(spks)
            hits += r["top"][0]["name"] == s
            n += 1
    assert n == 24 and hits >= 3 * n / len(spks)  # chance: 2 of 24


def test_decision_uses_the_stored_operating_point(enrolled, fbank_stats_run, tiny_data, tmp_path):
    f = _wavs(tiny_data, "spk003")[3]
    r = enrolled.identify(f, top=2)
    assert r["threshold"] == pytest.approx(np.log(99))  # Bayes threshold at p_target 0.01
    best = r["top"][0]
    assert r["unknown"] == (best["score"] < r["threshold"]) and (r["speaker"] is None) == r["unknown"]
    lenient = Recognizer(fbank_stats_run, enrolled.db.path, p_target=0.99)  # threshold log(1/99) < 0
    r2 = lenient.identify(f, top=2)
    assert r2["top"][0]["score"] == pytest.approx(best["score"])
    assert r2["unknown"] == (best["score"] < -np.log(99))
    # one enrolled recording: the DB verify equals the pairwise `layersv verify` of the two files
    one = Recognizer(fbank_stats_run, tmp_path / "one.sqlite")
    a = _wavs(tiny_data, "spk009")[0]
    one.enroll("x", [a])
    r3, ref = one.verify("x", f), verify_pair(fbank_stats_run, a, f)
    assert r3["score"] == pytest.approx(ref["score"], abs=1e-6) and r3["accept"] == ref["accept"]
    assert r3["posterior"] == pytest.approx(ref["posterior"])


def test_reenrol_any_format_and_rate_adds_utterances(fbank_stats_run, tiny_data, tmp_path):
    wav, sr = sf.read(_wavs(tiny_data, "spk001")[0])
    sf.write(tmp_path / "a.ogg", soxr.resample(wav, sr, 48000), 48000, format="OGG", subtype="OPUS")
    sf.write(tmp_path / "b.mp3", soxr.resample(wav, sr, 22050), 22050, format="MP3")
    rec = Recognizer(fbank_stats_run, tmp_path / "db.sqlite")
    r = rec.enroll("ann", [tmp_path / "a.ogg"])
    assert r["new"] and r["utterances"] == 1
    _, m1 = rec.db.speaker("ann")
    r = rec.enroll("ann", [tmp_path / "b.mp3", tmp_path / "a.ogg"])
    assert not r["new"] and r["utterances"] == 2 and r["skipped"] == [str(tmp_path / "a.ogg")]
    sp, m2 = rec.db.speaker("ann")
    assert sp.duration == pytest.approx(2 * len(wav) / sr, rel=0.05) and not np.allclose(m1, m2)
    assert np.linalg.norm(m2) == pytest.approx(1.0, abs=1e-5)
    assert np.dot(m1, m2) > 0.9  # same audio, other codec and rate: nearly the same embedding
    with pytest.raises(layersv.data.audio.AudioError, match="nothing enrolled"):
        (tmp_path / "bad.wav").write_bytes(b"not audio")
        rec.enroll("ann", [_wavs(tiny_data, "spk001")[1], tmp_path / "bad.wav"])
    assert rec.db.speaker("ann")[0].n_utts == 2  # all-or-nothing
    assert rec.delete("ann")["deleted"] and len(rec.db) == 0


def test_database_refuses_another_model_and_schema(fbank_stats_run, tiny_data, tmp_path):
    db = tmp_path / "db.sqlite"
    Recognizer(fbank_stats_run, db).enroll("a", _wavs(tiny_data, "spk000")[:1])
    other = layersv.load_model(fbank_stats_run)
    with torch.no_grad():
        next(v for v in other.state_dict().values() if v.is_floating_point()).add_(1e-3)  # other weights
    with pytest.raises(ModelMismatch, match="another model"):
        Recognizer(fbank_stats_run, db, model=other)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(DatabaseError, match="schema version 99"):
        Recognizer(fbank_stats_run, db)
    (tmp_path / "junk.sqlite").write_bytes(b"x" * 4096)
    with pytest.raises(DatabaseError, match="not a speaker database"):
        Recognizer(fbank_stats_run, tmp_path / "junk.sqlite")


def test_cli_enroll_identify_verify(fbank_stats_run, tiny_data, tmp_path, capsys):
    db, run = str(tmp_path / "db.sqlite"), str(fbank_stats_run)
    a, b = _wavs(tiny_data, "spk010"), _wavs(tiny_data, "spk011")
    assert main(["enroll", run, "--db", db, "ten", str(a[0]), str(a[1])]) == 0
    assert main(["enroll", run, "--db", db, "eleven", str(b[0])]) == 0
    assert "enrolled eleven: 1 recording(s)" in capsys.readouterr().out
    assert main(["identify", run, "--db", db, str(a[2]), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "answer:" in out and "LLR" in out and "2 enrolled speakers" in out
    assert main(["verify", run, "--db", db, "ten", str(a[3])]) == 0
    assert "enrolled speaker ten" in (out := capsys.readouterr().out) and "decision:" in out
    assert main(["verify", run, str(a[0]), str(a[3])]) == 0  # the two-file form still works
    assert "LLR:" in capsys.readouterr().out
    assert main(["verify", run, "--db", db, "nobody", str(a[3])]) == 2
    assert "not enrolled" in capsys.readouterr().err
    assert main(["identify", run, "--db", str(tmp_path / "empty.sqlite"), str(a[2])]) == 2
    assert "no speaker is enrolled" in capsys.readouterr().err


def test_concurrent_writers_and_a_second_reader(fbank_stats_run, tiny_data, tmp_path):
    db = tmp_path / "db.sqlite"
    rec, other = Recognizer(fbank_stats_run, db), Recognizer(fbank_stats_run, db)
    assert other.db.generation == 0 and len(other.index()) == 0
    spks = _speakers(tiny_data)[:6]
    errors = []

    def work(s):
        try:
            (rec if spks.index(s) % 2 else other).enroll(s, _wavs(tiny_data, s)[:1])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in spks]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and sorted(s["name"] for s in rec.speakers()) == spks
    for r in (rec, other):  # each sees the other's writes (index rebuilt on a new generation)
        assert len(r.index()) == 6
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ----------------------------------------------------------------------------- index vs exact search


def _clustered(n, dim, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)) @ rng.standard_normal((8, dim)) + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("ivf", [False, True])
def test_index_topk_equals_exact_topk(ivf):
    pytest.importorskip("faiss")
    n, dim, k = 3000, 32, 10
    vecs = _clustered(n, dim, 0)
    ids = np.arange(n, dtype=np.int64) * 7 + 3
    queries = vecs[::97] + 0.05 * np.random.default_rng(1).standard_normal((len(vecs[::97]), dim)).astype(np.float32)
    exact = build_index(dim, ids, vecs, "exact")
    fx = build_index(dim, ids, vecs, "faiss", ivf_min=1000 if ivf else 10**9, nprobe=1000)
    assert isinstance(exact, ExactIndex) and fx.kind.startswith("faiss-ivf" if ivf else "faiss-flat")
    (se, ie), (sf_, if_) = exact.search(queries, k), fx.search(queries, k)
    np.testing.assert_array_equal(ie, if_)
    np.testing.assert_allclose(se, sf_, atol=1e-5)
    gone = ie[:, 0]  # remove every query's best match, re-add one with a new vector
    for idx in (exact, fx):
        idx.remove(gone)
        idx.add(gone[:1], vecs[:1])
    (se, ie), (sf_, if_) = exact.search(queries, k), fx.search(queries, k)
    np.testing.assert_array_equal(ie, if_)
    assert len(exact) == len(fx) == n - len(set(gone)) + 1


def test_exact_fallback_without_faiss(monkeypatch, enrolled, tiny_data):
    import layersv.enrol.index as index

    monkeypatch.setattr(index, "have_faiss", lambda: False)
    ids, means = enrolled.db.means()
    assert isinstance(build_index(means.shape[1], ids, means), ExactIndex)
    exact = Recognizer(enrolled.run, enrolled.db.path, index="exact", model=enrolled.model)
    f = _wavs(tiny_data, "spk005")[3]
    a, b = exact.identify(f, top=4), enrolled.identify(f, top=4)
    assert a["index"] == "exact" and [r["name"] for r in a["top"]] == [r["name"] for r in b["top"]]
    s, i = exact.index().search(np.zeros((1, means.shape[1]), np.float32), 20)
    assert (i[0, len(ids):] == -1).all() and np.isneginf(s[0, len(ids):]).all()  # k > N: padded
