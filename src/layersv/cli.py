"""The ``layersv`` command: a thin shell, each subcommand parses arguments and calls one library function."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

EPILOG = """Any config key can be overridden with --key value (leaf name, or section.key when a leaf name
is ambiguous), e.g. --batch_size 64 --frz_pretrain --margin 0.3 --backbone_cfg tiny-wav2vec2.
Run `layersv train DATA MODEL --help-config` to list every key of that model's config."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="layersv", description="Speaker verification on multi-layer encoder features.")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="synthetic corpus → train → evaluate → report, on a CPU")
    q.add_argument("--out", default=None, help="output folder (default res/quickstart-<time>)")
    q.add_argument("--fast", action="store_true", help="a shorter run (under a minute on 2 cores)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--no-progress", action="store_true")

    t = sub.add_parser("train", help="train MODEL on a dataset folder", epilog=EPILOG)
    t.add_argument("data", nargs="?", help="dataset folder (data.yaml, train.csv, valid/test trials)")
    t.add_argument("model", nargs="?", help="model name (see `layersv models`)")
    t.add_argument("--config", default=None, help="YAML config file (may use extends:)")
    t.add_argument("--out", default=None, help="run folder (default res/local-YYYYMMDD-HHMMSS)")
    t.add_argument("--resume", default=None, metavar="RUN", help="continue RUN from its model_last.pt (resume state)")
    t.add_argument("--help-config", action="store_true", help="print the resolved config and exit")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("eval", help="evaluate a run's best model on test trials")
    e.add_argument("run")
    e.add_argument("--eval_data", default="", help="another dataset folder whose test trials to score")
    e.add_argument("--trials", default="", metavar="NAME|FILE",
                   help="score another trial list: NAME_trials.csv of the dataset folder (e.g. vox1_e, vox1_h) "
                   "or a trial file; writes report_<name>.* and scores/<name>_*.csv next to the run's report")
    e.add_argument("--device", default="cpu")
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

    sub.add_parser("models", help="list the model registry with parameter counts")
    from . import cli_analysis, cli_data, cli_enrol, cli_frontends, cli_infer

    for extra in (cli_infer, cli_data, cli_frontends, cli_analysis, cli_enrol):
        extra.add_parsers(sub)
    return p


def cmd_quickstart(a) -> int:
    from .quickstart import quickstart

    quickstart(a.out, fast=a.fast, seed=a.seed, progress=not a.no_progress, device=a.device)
    return 0


def cmd_train(a, rest: list[str]) -> int:
    from .cli_support import assemble_config, registries
    from .config import load_config, parse_override_args, to_dict
    from .train import fit, new_run_dir

    command = "layersv " + shlex.join(sys.argv[1:])
    if a.resume:
        run = Path(a.resume)
        if not (run / "model_last.pt").is_file():
            raise FileNotFoundError(f"cannot resume {run}: no model_last.pt (did the first cycle finish?)")
        if not (run / "config.yaml").is_file():
            raise FileNotFoundError(f"cannot resume {run}: no config.yaml (not a run folder)")
        if rest or a.data or a.model:
            raise ValueError("--resume continues a run with its saved config; drop the other arguments")
        cfg = load_config(run / "config.yaml", registries())
        fit(cfg, run, resume=True, progress=not a.no_progress, command=command)
        return 0
    if not a.data or not a.model:
        raise ValueError("usage: layersv train DATA MODEL [--key value ...]  (or --resume RUN)")
    cfg = assemble_config(a.data, a.model, a.config, parse_override_args(rest))
    if a.help_config:
        import yaml

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    run_dir = new_run_dir(a.out)
    if any((run_dir / f).exists() for f in ("model_last.pt", "model_best.json", "model_best.pt")):
        raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    fit(cfg, run_dir, progress=not a.no_progress, command=command)
    return 0


def cmd_eval(a) -> int:
    from .evaluate import evaluate_run

    ov = {k: getattr(a, k) for k in ("n_crops", "crop_sec", "cohort", "cohort_size", "asnorm_topk")
          if getattr(a, k) is not None}
    ov.update({k: True for k in ("score_normalize", "score_calibrate", "score_plda") if getattr(a, k)})
    r = evaluate_run(a.run, eval_data=a.eval_data, device=a.device, progress=not a.no_progress, overrides=ov,
                     trials=a.trials)
    if not r:  # a rank > 0 under torchrun: rank 0 reports
        return 0
    for st, m in r["stages"].items():
        cal = f"  Cllr {m['cllr']:.4f}  actDCF(0.01) {m['act_dcf_0.01']:.4f}" if "cllr" in m else ""
        print(f"{st:10s} EER {m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.4f}  minDCF(0.05) {m['min_dcf_0.05']:.4f}"
              + cal)
    return 0


def cmd_models(a) -> int:
    from .model_table import model_table

    print(model_table())
    return 0


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .data.audio import AudioError
    from .data.folder import DatasetError

    import warnings

    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    a, rest = parser.parse_known_args(argv)
    if rest and a.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if a.command == "quickstart":
            return cmd_quickstart(a)
        if a.command == "train":
            return cmd_train(a, rest)
        if a.command == "eval":
            return cmd_eval(a)
        if a.command == "models":
            return cmd_models(a)
        from . import cli_analysis, cli_data, cli_enrol, cli_frontends, cli_infer

        for extra in (cli_infer, cli_data, cli_frontends, cli_analysis, cli_enrol):
            rc = extra.run(a)
            if rc is not None:
                return rc
    except (ConfigError, DatasetError, AudioError, FileNotFoundError, FileExistsError, ValueError,
            FloatingPointError) as e:
        print(f"layersv: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder: writes are atomic, so no file is left half-written
        print(f"layersv: error: cannot write or read a file: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layersv: interrupted (a run can be continued with `layersv train --resume RUN`)", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
