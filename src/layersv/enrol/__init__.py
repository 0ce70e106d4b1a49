"""Enrolment, identification and a verification service on a real speaker database.

* :mod:`.db`: the SQLite store (:class:`SpeakerDB`), schema-versioned and bound to one model;
* :mod:`.index`: exact (numpy) and faiss nearest-speaker search;
* :mod:`.recognizer`: :class:`Recognizer` with ``enroll`` / ``verify`` / ``identify``;
* :mod:`.service`: the FastAPI app behind ``layersv serve`` (needs the ``serve`` extra).

Python API::

    from . import Recognizer
    rec = Recognizer("res/quickstart/run", "speakers.sqlite")
    rec.enroll("alice", ["alice1.wav", "alice2.ogg"])
    rec.verify("alice", "test.wav")["accept"]
    rec.identify("test.wav", top=3)["speaker"]
"""

from .db import DatabaseError, ModelMismatch, SpeakerDB, UnknownSpeaker
from .recognizer import Recognizer, model_fingerprint

__all__ = ["DatabaseError", "ModelMismatch", "Recognizer", "SpeakerDB", "UnknownSpeaker", "model_fingerprint"]
