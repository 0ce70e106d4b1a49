"""Enrolment store: speakers, their utterance embeddings and means in one SQLite file.

Schema (``SCHEMA_VERSION`` 1, stdlib :mod:`sqlite3`, WAL journal):

* ``meta(key, value)``: ``schema_version``, ``model_id`` (fingerprint of the encoder that made
  every embedding, see :func:`model_fingerprint`), ``model`` (its description, JSON),
  ``embedding_dim``, ``generation`` (bumped by every write, so readers in other processes
  notice changes);
* ``speakers(id, name, created, updated, n_utts, duration, raw_norm, mean)``: ``mean`` is the
  re-normalised mean of the speaker's unit utterance embeddings, float32 ``(E,)`` bytes;
  ``duration`` the summed utterance duration (s); ``raw_norm`` the mean raw norm;
* ``utterances(id, speaker_id, source, sha256, duration, raw_norm, embedding, added)``:
  one row per enrolled recording, ``embedding`` unit float32 ``(E,)`` bytes.

Writes take one in-process lock and ``BEGIN IMMEDIATE`` (one writer across processes);
readers never block thanks to WAL.  Each thread gets its own connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS speakers (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    n_utts INTEGER NOT NULL, duration REAL NOT NULL, raw_norm REAL NOT NULL, mean BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS utterances (
    id INTEGER PRIMARY KEY, speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
    source TEXT NOT NULL, sha256 TEXT NOT NULL, duration REAL NOT NULL, raw_norm REAL NOT NULL,
    embedding BLOB NOT NULL, added REAL NOT NULL, UNIQUE(speaker_id, sha256));
CREATE INDEX IF NOT EXISTS utterances_speaker ON utterances(speaker_id);
"""
MAX_NAME = 200


class DatabaseError(ValueError):
    """A database that cannot be used: other schema version, other model, unknown speaker."""


class ModelMismatch(DatabaseError):
    """The database was built with another model than the one given."""


class EmptyDatabase(DatabaseError):
    """No speaker is enrolled yet."""


class UnknownSpeaker(DatabaseError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class Utterance:
    """One recording to store: unit ``embedding (E,)``, raw norm, ``duration`` (s), source label."""

    embedding: np.ndarray
    raw_norm: float
    duration: float
    source: str
    sha256: str


@dataclass
class Speaker:
    id: int
    name: str
    n_utts: int
    duration: float  # s, summed over utterances
    raw_norm: float  # mean raw norm of the utterance embeddings
    created: float  # unix time
    updated: float

    def to_dict(self) -> dict:
        return {"name": self.name, "utterances": self.n_utts, "duration": round(self.duration, 3),
                "created": self.created, "updated": self.updated}


def check_name(name: str) -> str:
    """A speaker name: 1..200 printable characters, no surrounding whitespace."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or name != name.strip():
        raise DatabaseError(f"invalid speaker name {name!r}: 1..{MAX_NAME} characters, no surrounding spaces")
    if not name.isprintable():
        raise DatabaseError(f"invalid speaker name {name!r}: control characters")
    return name


def _generation(c: sqlite3.Connection) -> int:
    return int(c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def _blob(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype=np.float32).tobytes()


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / max(np.linalg.norm(x), 1e-12)).astype(np.float32)


class SpeakerDB:
    """A speaker database bound to one model identity.

    ``SpeakerDB(path, model_id, model_info, dim)`` creates the file if needed; an existing
    file must have the same schema version and ``model_id`` (else :class:`ModelMismatch`).
    """

    def __init__(self, path: str | os.PathLike, model_id: str, model_info: dict | None = None, dim: int = 0):
        self.path = Path(path)
        self.model_id = model_id
        self._local = threading.local()
        self._write_lock = threading.Lock()
        if self.path.is_dir():
            raise DatabaseError(f"{self.path} is a folder, not a database file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._writing(bump=False) as c:
            for stmt in filter(str.strip, _SCHEMA.split(";")):  # executescript would commit early
                c.execute(stmt)
            meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                now = str(time.time())
                c.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("model_id", model_id),
                    ("model", json.dumps(model_info or {}, sort_keys=True)), ("embedding_dim", str(int(dim))),
                    ("generation", "0"), ("created", now)])
                meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
        if int(meta.get("schema_version", -1)) != SCHEMA_VERSION:
            raise DatabaseError(f"{self.path}: schema version {meta.get('schema_version')} "
                                f"(this layersv reads version {SCHEMA_VERSION})")
        if meta.get("model_id") != model_id:
            raise ModelMismatch(f"{self.path} was built with another model (id {meta.get('model_id', '?')[:12]}, "
                                f"{meta.get('model', '')[:120]}); this model is {model_id[:12]}. Enrolments are "
                                "only comparable with the model that made them: use that run or a new --db")
        self.dim = int(meta["embedding_dim"])

    # ------------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            try:
                c = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                c.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as e:
                raise DatabaseError(f"{self.path}: not a speaker database ({e})") from None
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = c
        return c

    @contextmanager
    def _writing(self, bump: bool = True):
        """One writer: the in-process lock, then an IMMEDIATE transaction (committed or rolled back).

        ``bump``: count the transaction as a change of the speakers (readers rebuild their index).
        """
        with self._write_lock:
            c = self._conn()
            try:
                c.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:
                raise DatabaseError(f"{self.path}: not a speaker database ({e})") from None
            try:
                yield c
                if bump:
                    c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    # ------------------------------------------------------------------ reads
    @property
    def generation(self) -> int:
        """A counter bumped by every committed write (from any process)."""
        return _generation(self._conn())

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM speakers").fetchone()[0])

    def speakers(self) -> list[Speaker]:
        rows = self._conn().execute("SELECT id, name, n_utts, duration, raw_norm, created, updated FROM speakers "
                                    "ORDER BY name").fetchall()
        return [Speaker(*r) for r in rows]

    def speaker(self, name: str) -> tuple[Speaker, np.ndarray]:
        """``(Speaker, mean (E,))`` of ``name``; :class:`UnknownSpeaker` if not enrolled."""
        r = self._conn().execute("SELECT id, name, n_utts, duration, raw_norm, created, updated, mean FROM speakers "
                                 "WHERE name = ?", (name,)).fetchone()
        if r is None:
            raise UnknownSpeaker(f"speaker {name!r} is not enrolled")
        return Speaker(*r[:7]), np.frombuffer(r[7], dtype=np.float32).copy()

    def by_ids(self, ids: list[int]) -> dict[int, tuple[Speaker, np.ndarray]]:
        """``{id: (Speaker, mean (E,))}`` for the ids that exist."""
        out = {}
        for s in range(0, len(ids), 500):
            part = [int(i) for i in ids[s : s + 500]]
            q = ("SELECT id, name, n_utts, duration, raw_norm, created, updated, mean FROM speakers WHERE id IN "
                 f"({','.join('?' * len(part))})")
            for r in self._conn().execute(q, part):
                out[r[0]] = (Speaker(*r[:7]), np.frombuffer(r[7], dtype=np.float32).copy())
        return out

    def means(self) -> tuple[np.ndarray, np.ndarray]:
        """All speaker means: ``ids (N,)`` int64 and ``matrix (N, E)`` float32 (unit rows)."""
        rows = self._conn().execute("SELECT id, mean FROM speakers ORDER BY id").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.dim)
        return ids, mat.copy()

    def utterances(self, name: str) -> list[dict]:
        sp, _ = self.speaker(name)
        rows = self._conn().execute("SELECT source, sha256, duration, raw_norm, added FROM utterances "
                                    "WHERE speaker_id = ? ORDER BY id", (sp.id,)).fetchall()
        return [dict(zip(("source", "sha256", "duration", "raw_norm", "added"), r)) for r in rows]

    # ------------------------------------------------------------------ writes
    def add(self, name: str, utts: list[Utterance]) -> dict:
        """Add utterances to ``name`` (created if new) and update its mean; one transaction.

        An utterance whose audio (``sha256``) the speaker already has is skipped.
        Returns ``{"speaker": Speaker, "mean": (E,), "added": [...], "skipped": [...], "new": bool}``.
        """
        check_name(name)
        for u in utts:
            if u.embedding.shape != (self.dim,):
                raise DatabaseError(f"embedding of shape {u.embedding.shape}, the database holds ({self.dim},)")
        now = time.time()
        with self._writing() as c:
            r = c.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            new = r is None
            if new:
                sid = c.execute("INSERT INTO speakers (name, created, updated, n_utts, duration, raw_norm, mean) "
                                "VALUES (?, ?, ?, 0, 0, 0, ?)", (name, now, now, _blob(np.zeros(self.dim)))).lastrowid
            else:
                sid = r[0]
            added, skipped = [], []
            for u in utts:
                cur = c.execute("INSERT OR IGNORE INTO utterances (speaker_id, source, sha256, duration, raw_norm, "
                                "embedding, added) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (sid, u.source, u.sha256, float(u.duration), float(u.raw_norm),
                                 _blob(u.embedding), now))
                (added if cur.rowcount else skipped).append(u.source)
            if not added and new:
                raise DatabaseError(f"nothing to enrol for {name!r}")
            rows = c.execute("SELECT embedding, duration, raw_norm FROM utterances WHERE speaker_id = ?",
                             (sid,)).fetchall()
            mat = np.frombuffer(b"".join(x[0] for x in rows), dtype=np.float32).reshape(len(rows), self.dim)
            mean = _unit(mat.astype(np.float64).mean(0))
            dur, norm = float(sum(x[1] for x in rows)), float(np.mean([x[2] for x in rows]))
            c.execute("UPDATE speakers SET updated = ?, n_utts = ?, duration = ?, raw_norm = ?, mean = ? WHERE id = ?",
                      (now, len(rows), dur, norm, _blob(mean), sid))
            gen = _generation(c) + 1  # the value this transaction commits
        sp = self.speaker(name)[0]
        return {"speaker": sp, "mean": mean, "added": added, "skipped": skipped, "new": new, "generation": gen}

    def delete(self, name: str) -> tuple[int, int]:
        """Remove a speaker and its utterances → ``(its id, new generation)``; :class:`UnknownSpeaker` if absent."""
        with self._writing() as c:
            r = c.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            if r is None:
                raise UnknownSpeaker(f"speaker {name!r} is not enrolled")
            c.execute("DELETE FROM speakers WHERE id = ?", (r[0],))
            gen = _generation(c) + 1
        return int(r[0]), gen

    def add_means(self, names: list[str], means: np.ndarray, duration: float = 10.0, raw_norm: float = 1.0) -> None:
        """Bulk-insert speakers given only their means ``(N, E)`` (benchmarks, imports); no utterance rows."""
        now = time.time()
        with self._writing() as c:
            c.executemany("INSERT INTO speakers (name, created, updated, n_utts, duration, raw_norm, mean) "
                          "VALUES (?, ?, ?, 0, ?, ?, ?)",
                          [(check_name(n), now, now, duration, raw_norm, _blob(_unit(m)))
                           for n, m in zip(names, means)])
