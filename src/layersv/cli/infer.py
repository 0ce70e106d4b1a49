"""``layersv embed | verify | export | convert``: inference commands (each calls one library function)."""

from __future__ import annotations

from ..convert import convert_run
from ..embed import embed_files
from ..enrol import Recognizer
from ..export import export_run
from ..runs import verify


def add_parsers(sub) -> None:
    e = sub.add_parser("embed", help="embed audio files (or list files) with a run's best model → .npz")
    e.add_argument("run", help="run folder (or a model checkpoint)")
    e.add_argument("inputs", nargs="+", help="audio files, or .txt/.lst/.scp lists of paths (one per line)")
    e.add_argument("-o", "--out", required=True, help="output .npz (keys, matrix, raw_norms, durations)")
    e.add_argument("--chunk_sec", type=float, default=20.0, help="window length for long files (s)")
    e.add_argument("--device", default="cpu")
    e.set_defaults(handler=cmd_embed)

    v = sub.add_parser("verify", help="same speaker? calibrated LLR + decision at the run's operating point")
    v.add_argument("run", help="a run folder evaluated by `layersv eval` (holds calibration.json)")
    v.add_argument("a", help="first audio file (with --db: an enrolled speaker's name)")
    v.add_argument("b", help="second audio file")
    v.add_argument("--db", default=None, help="speaker database: verify enrolled speaker A against file B")
    v.add_argument("--p_target", type=float, default=0.01, help="prior of a target trial for the decision")
    v.add_argument("--device", default="cpu")
    v.set_defaults(handler=cmd_verify)

    x = sub.add_parser("export", help="export a run's model to ONNX (with a parity check in onnxruntime)")
    x.add_argument("run")
    x.add_argument("-o", "--out", required=True, help="output .onnx file")
    x.add_argument("--backend-only", action="store_true", help="export hidden (B,L,T,D), lengths → embedding")
    x.set_defaults(handler=cmd_export)

    c = sub.add_parser("convert", help="rewrite an old pickled run (model_best.pt) as safetensors + JSON")
    c.add_argument("run", help="run folder (or one old .pt checkpoint)")
    c.add_argument("--trust", action="store_true", help="required: converting unpickles the old files, which can "
                   "run arbitrary code — only for files whose origin you trust")
    c.set_defaults(handler=cmd_convert)


def format_verify(r: dict) -> str:
    lines = []
    if r["calibrated"]:
        lines.append(f"LLR: {r['score']:+.3f} (calibrated, stage {r['stage']})")
    else:
        lines.append(f"score: {r['score']:+.4f} ({r['stage']}; this run has no calibrator, so this is not an LLR)")
    if r["accept"] is None:
        lines.append(f"decision: unavailable — no stored operating point ({r['threshold_kind']})")
    else:
        lines.append(f"decision: {'SAME speaker' if r['accept'] else 'DIFFERENT speakers'} "
                     f"(score {'>=' if r['accept'] else '<'} {r['threshold']:+.4f}, {r['threshold_kind']})")
    if "posterior" in r:
        lines.append(f"confidence: P(same speaker) = {r['posterior']:.4f} at prior p_target = {r['p_target']:g}")
    else:
        lines.append("confidence: no calibrated posterior (run `layersv eval RUN --score_calibrate` to fit one)")
    return "\n".join(lines)


def cmd_embed(a) -> int:
    print(f"wrote {embed_files(a.run, a.inputs, a.out, device=a.device, chunk_sec=a.chunk_sec)}")
    return 0


def cmd_verify(a) -> int:
    if a.db:  # verify RUN --db DB NAME AUDIO: an enrolled speaker against a file
        r = Recognizer(a.run, a.db, device=a.device, p_target=a.p_target).verify(a.a, a.b)
        print(f"enrolled speaker {r['name']} vs {a.b}\n" + format_verify(r))
        return 0
    print(format_verify(verify(a.run, a.a, a.b, p_target=a.p_target, device=a.device)))
    return 0


def cmd_export(a) -> int:
    r = export_run(a.run, a.out, backend_only=a.backend_only)
    print(f"wrote {r['path']} ({r['part']}); onnxruntime vs PyTorch max |diff| = {r['max_abs_diff']:.2e}")
    return 0


def cmd_convert(a) -> int:
    for f in convert_run(a.run, trust=a.trust):
        print(f"wrote {f}")
    return 0
