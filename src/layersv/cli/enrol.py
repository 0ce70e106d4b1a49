"""``layersv enroll | identify | serve``: commands on a speaker database (``verify --db``: :mod:`.infer`)."""

from __future__ import annotations

import json

from ..embed import expand_inputs
from ..enrol import Recognizer
from ..enrol.service import serve


def add_parsers(sub) -> None:
    e = sub.add_parser("enroll", help="embed recordings of a speaker and add them to a speaker database")
    e.add_argument("run", help="run folder (its model and calibration)")
    e.add_argument("--db", required=True, help="SQLite speaker database (created if missing)")
    e.add_argument("name", help="speaker name")
    e.add_argument("audio", nargs="+", help="audio files, or .txt/.lst/.scp lists of paths")
    e.add_argument("--device", default="cpu")
    e.set_defaults(handler=cmd_enroll)

    i = sub.add_parser("identify", help="the closest enrolled speakers of a recording, or 'unknown speaker'")
    i.add_argument("run")
    i.add_argument("--db", required=True)
    i.add_argument("audio", help="audio file")
    i.add_argument("--top", type=int, default=5, help="how many speakers to list")
    i.add_argument("--p_target", type=float, default=0.01, help="prior of a target trial for the decision")
    i.add_argument("--index", default="auto", choices=["auto", "faiss", "exact"])
    i.add_argument("--json", action="store_true", help="print the result as JSON")
    i.add_argument("--device", default="cpu")
    i.set_defaults(handler=cmd_identify)

    s = sub.add_parser("serve", help="HTTP API + web page for enrol / verify / identify (needs layersv[serve])")
    s.add_argument("run")
    s.add_argument("--db", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api_key", default=None, help="require this X-API-Key header (default: $LAYERSV_API_KEY)")
    s.add_argument("--max_mb", type=float, default=20.0, help="largest upload (MB)")
    s.add_argument("--max_sec", type=float, default=120.0, help="longest recording (s)")
    s.add_argument("--p_target", type=float, default=0.01)
    s.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(handler=cmd_serve)


def format_identify(r: dict) -> str:
    if r["unknown"] is None:
        head = "answer: unavailable — no stored operating point"
    else:
        head = f"answer: {r['speaker']}" if r["speaker"] else "answer: unknown speaker (no one above the threshold)"
    if r["threshold"] is not None:
        head += f"  [{r['stage']} {r['threshold']:+.3f}: {r['threshold_kind']}]"
    lines = [head]
    kind = "LLR" if r["calibrated"] else "score"
    for k, row in enumerate(r["top"], 1):
        post = f"  P(same) {row['posterior']:.4f}" if "posterior" in row else ""
        lines.append(f"{k:3d}. {row['name']:30s} {kind} {row['score']:+.3f}{post}")
    lines.append(f"({r['enrolled']} enrolled speakers, index {r['index']})")
    return "\n".join(lines)


def cmd_enroll(a) -> int:
    r = Recognizer(a.run, a.db, device=a.device).enroll(a.name, expand_inputs(a.audio))
    skipped = f", {len(r['skipped'])} already enrolled" if r["skipped"] else ""
    print(f"{'enrolled' if r['new'] else 'added to'} {r['name']}: {len(r['added'])} recording(s){skipped}; "
          f"now {r['utterances']} recording(s), {r['duration']:.1f} s in {a.db}")
    return 0


def cmd_identify(a) -> int:
    r = Recognizer(a.run, a.db, device=a.device, p_target=a.p_target, index=a.index).identify(a.audio, top=a.top)
    print(json.dumps(r, indent=2) if a.json else format_identify(r))
    return 0


def cmd_serve(a) -> int:
    serve(a.run, a.db, host=a.host, port=a.port, api_key=a.api_key, max_mb=a.max_mb, max_sec=a.max_sec,
          p_target=a.p_target, threads=a.threads, device=a.device)
    return 0
