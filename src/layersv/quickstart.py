"""``layersv quickstart``: synthetic corpus → tiny random WavLM + SUPERB/ASTP + AAM → train → eval → report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .runs.assemble import assemble_config
from .runs.fit import fit
from .synthetic import generate_corpus


def quickstart(out: str | Path | None = None, fast: bool = False, seed: int = 0, overrides: dict | None = None,
               progress: bool = True, device: str = "cpu") -> dict:
    """Run the whole pipeline on the built-in synthetic corpus; returns report.json as a dict.

    ``fast`` trains fewer, smaller steps (under a minute on 2 CPU cores).
    """
    t0 = time.time()
    out = Path(out) if out else Path("res") / time.strftime("quickstart-%Y%m%d-%H%M%S")
    data_dir = out / "data"
    print(f"[layersv] generating the synthetic corpus in {data_dir}")
    generate_corpus(data_dir, seed=seed, progress=progress)
    ov = {"description": "quickstart" + (" --fast" if fast else ""), "seed": str(seed), "device": device}
    if fast:
        ov.update({"nb_total_step": "120", "nb_steps_eval": "60", "batch_size": "24"})
    ov.update(overrides or {})
    cfg = assemble_config(str(data_dir), "SUPERB", "quickstart", ov, use_recipe=False)
    run_dir = out / "run"
    print(f"[layersv] training {cfg.model.model} on {cfg.frontend.backbone_cfg} → {run_dir}")
    fit(cfg, run_dir, progress=progress, command="layersv quickstart" + (" --fast" if fast else ""))
    report = json.loads((run_dir / "report.json").read_text())
    m = report["stages"]["cosine"]
    print(f"[layersv] done in {time.time() - t0:.0f} s. Test ({report['trials']} trials): "
          f"EER {m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.4f}  minDCF(0.05) {m['min_dcf_0.05']:.4f}")
    if "qmf" in report["stages"]:
        q = report["stages"]["qmf"]
        print(f"[layersv] calibrated (QMF, fitted on validation trials): Cllr {q['cllr']:.3f} bits, "
              f"actual DCF(0.01) {q['act_dcf_0.01']:.4f}")
    print(f"[layersv] report: {run_dir / 'report.md'}")
    print(f"[layersv] try: layersv verify {run_dir} A.wav B.wav")
    return report
