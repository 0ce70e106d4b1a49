"""``layersv quickstart | train | eval | fuse | models``: the run commands (each calls one library function)."""

from __future__ import annotations

import shlex
import sys

import yaml

from ..config import parse_override_args, to_dict
from ..model_table import model_table
from ..quickstart import quickstart
from ..runs import assemble_config, evaluate_run, fit, fuse_runs, new_run_dir, resume_config

EPILOG = """Any config key can be overridden with --key value (leaf name, or section.key when a leaf name
is ambiguous), e.g. --batch_size 64 --frz_pretrain --margin 0.3 --backbone_cfg tiny-wav2vec2.
Run `layersv train DATA MODEL --help-config` to list every key of that model's config."""


def add_parsers(sub) -> None:
    q = sub.add_parser("quickstart", help="synthetic corpus → train → evaluate → report, on a CPU")
    q.add_argument("--out", default=None, help="output folder (default res/quickstart-<time>)")
    q.add_argument("--fast", action="store_true", help="a shorter run (under a minute on 2 cores)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(handler=cmd_quickstart)

    t = sub.add_parser("train", help="train MODEL on a dataset folder", epilog=EPILOG)
    t.add_argument("data", nargs="?", help="dataset folder (data.yaml, train.csv, valid/test trials)")
    t.add_argument("model", nargs="?", help="model name (see `layersv models`)")
    t.add_argument("--config", default=None, help="YAML config file (may use extends:)")
    t.add_argument("--out", default=None, help="run folder (default res/local-YYYYMMDD-HHMMSS)")
    t.add_argument("--resume", default=None, metavar="RUN", help="continue RUN from its model_last.pt (resume state)")
    t.add_argument("--help-config", action="store_true", help="print the resolved config and exit")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(handler=cmd_train, takes_overrides=True)

    e = sub.add_parser("eval", help="evaluate a run's best model on test trials")
    e.add_argument("run")
    e.add_argument("--eval_data", default="", help="another dataset folder whose test trials to score "
                   "(report_<dataset>_test.* beside the run's report, or in --out)")
    e.add_argument("--trials", default="", metavar="NAME|FILE",
                   help="score another trial list: NAME_trials.csv of the dataset folder (e.g. vox1_e, vox1_h) "
                   "or a trial file; writes report_<name>.* and scores/<name>_*.csv next to the run's report")
    e.add_argument("--out", default="", metavar="DIR", help="report folder of an --eval_data or --trials "
                   "evaluation (report.json/.md, det.png, scores/); the run's own report is never overwritten")
    e.add_argument("--device", default="cpu")
    e.add_argument("--workers", type=int, default=None, help="data-loading worker processes (default: the run's)")
    e.add_argument("--no-progress", action="store_true")
    e.add_argument("--score_normalize", action="store_true", help="add the AS-norm stage")
    e.add_argument("--score_calibrate", action="store_true", help="add the QMF calibration stage (LLRs)")
    e.add_argument("--score_plda", action="store_true", help="add a two-covariance PLDA stage (needs several "
                   "recordings per training speaker)")
    e.add_argument("--n_crops", type=int, default=None, help="mean of N fixed crops instead of full utterances")
    e.add_argument("--crop_sec", type=float, default=None, help="crop length in seconds (with --n_crops)")
    e.add_argument("--cohort", default=None, help="AS-norm cohort: auto | train | cohort_csv")
    e.add_argument("--cohort_size", type=int, default=None, help="max cohort speakers (0 = all)")
    e.add_argument("--asnorm_topk", type=int, default=None, help="top-k cohort scores per side")
    e.set_defaults(handler=cmd_eval)

    f = sub.add_parser("fuse", help="fuse evaluated runs: logistic-regression weights fitted on validation trials")
    f.add_argument("systems", nargs="+", metavar="RUN[:STAGE]", help="evaluated run folders on the same trials; "
                   "STAGE (cosine, asnorm, plda, qmf, ...) defaults to the run's best stage on validation")
    f.add_argument("--out", required=True, metavar="DIR", help="report folder (report.json/.md, det.png, "
                   "scores/test_fusion.csv, fusion.json)")
    f.add_argument("--c", type=float, default=1.0, help="inverse L2 regularisation of the logistic regression")
    f.set_defaults(handler=cmd_fuse)

    sub.add_parser("models", help="list the model registry with parameter counts").set_defaults(handler=cmd_models)


def cmd_quickstart(a) -> int:
    quickstart(a.out, fast=a.fast, seed=a.seed, progress=not a.no_progress, device=a.device)
    return 0


def cmd_train(a) -> int:
    command = "layersv " + shlex.join(sys.argv[1:])
    if a.resume:
        if a.overrides or a.data or a.model:
            raise ValueError("--resume continues a run with its saved config; drop the other arguments")
        fit(resume_config(a.resume), a.resume, resume=True, progress=not a.no_progress, command=command)
        return 0
    if not a.data or not a.model:
        raise ValueError("usage: layersv train DATA MODEL [--key value ...]  (or --resume RUN)")
    cfg = assemble_config(a.data, a.model, a.config, parse_override_args(a.overrides))
    if a.help_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    run_dir = new_run_dir(a.out)
    if any((run_dir / f).exists() for f in ("model_last.pt", "model_best.json", "model_best.pt")):
        raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    fit(cfg, run_dir, progress=not a.no_progress, command=command)
    return 0


def cmd_eval(a) -> int:
    ov = {k: getattr(a, k) for k in ("n_crops", "crop_sec", "cohort", "cohort_size", "asnorm_topk", "workers")
          if getattr(a, k) is not None}
    ov.update({k: True for k in ("score_normalize", "score_calibrate", "score_plda") if getattr(a, k)})
    r = evaluate_run(a.run, eval_data=a.eval_data, device=a.device, progress=not a.no_progress, overrides=ov,
                     trials=a.trials, out=a.out)
    if not r:  # a rank > 0 under torchrun: rank 0 reports
        return 0
    for st, m in r["stages"].items():
        cal = f"  Cllr {m['cllr']:.4f}  actDCF(0.01) {m['act_dcf_0.01']:.4f}" if "cllr" in m else ""
        print(f"{st:10s} EER {m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.4f}  minDCF(0.05) {m['min_dcf_0.05']:.4f}"
              + cal)
    if a.out:
        print(f"written: {a.out}/report.json, report.md, det.png")
    return 0


def cmd_fuse(a) -> int:
    r = fuse_runs(a.systems, a.out, c=a.c)
    w = r["fusion"]["weights"]
    print("weights (per raw score): " + ", ".join(f"{n} {x:.4f}" for n, x in w.items()))
    for st, m in r["stages"].items():
        v = r["valid_stages"][st]["eer"]
        print(f"{st:24s} valid EER {v:.2f} %  test EER {m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.4f}")
    print(f"written: {a.out}/report.json, report.md, det.png")
    return 0


def cmd_models(a) -> int:
    print(model_table())
    return 0
