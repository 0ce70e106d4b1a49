"""Collect every system of a recipe run into one table, one training-curve plot and the layer usage.

    python recipes/speechocean762/summarize.py OUT_DIR [--md OUT_DIR/results.md]

Reads ``OUT_DIR/<system>/report.json`` (test stages and ``valid_stages``), ``metrics.csv`` (one row
per cycle) and ``layers.json`` (``layersv layers``) and writes ``results.md``, ``curves.png`` and
``results.json`` in OUT_DIR.  Systems are listed in the order of their folder names.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STAGES = ("cosine", "mean_sub", "asnorm", "plda", "qmf", "fusion")


def read_system(d: Path) -> dict | None:
    rep = d / "report.json"
    if not rep.is_file():
        return None
    r = json.loads(rep.read_text())
    rows = list(csv.DictReader(open(d / "metrics.csv"))) if (d / "metrics.csv").is_file() else []
    lay = json.loads((d / "layers.json").read_text()) if (d / "layers.json").is_file() else None
    return {"name": d.name, "model": r.get("model"), "test": r.get("stages", {}), "valid": r.get("valid_stages", {}),
            "selected_step": r.get("selected_step"), "curve": rows, "layers": lay,
            "trials": r.get("trials"), "targets": r.get("targets")}


def fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def table(systems: list[dict]) -> str:
    out = ["| system | model | stage | valid EER % | valid minDCF0.01 | test EER % | test minDCF0.01 | selected step |",
           "|---|---|---|---|---|---|---|---|"]
    for s in systems:
        for st in STAGES:
            if st not in s["test"] and st not in s["valid"]:
                continue
            v, t = s["valid"].get(st, {}), s["test"].get(st, {})
            out.append(f"| {s['name']} | {s['model']} | {st} | {fmt(v.get('eer'))} | {fmt(v.get('min_dcf_0.01'), 3)} | "
                       f"{fmt(t.get('eer'))} | {fmt(t.get('min_dcf_0.01'), 3)} | {s['selected_step']} |")
    return "\n".join(out)


def layer_lines(systems: list[dict]) -> str:
    out = []
    for s in systems:
        lay = s["layers"]
        if not lay or not lay.get("weights"):
            continue
        w = ", ".join(f"{i}: {x:.2f}" for i, x in zip(lay["layer_ids"], lay["weights"]))
        out.append(f"- {s['name']} ({lay.get('source')}): {w}")
    return "\n".join(out)


def plot_curves(systems: list[dict], path: Path) -> None:
    trained = [s for s in systems if s["curve"] and any(r.get("train_acc") for r in s["curve"])]
    if not trained:
        return
    fig, axes = plt.subplots(1, len(trained), figsize=(3.4 * len(trained), 3.0), squeeze=False)
    for ax, s in zip(axes[0], trained):
        step = [int(r["step"]) for r in s["curve"]]
        ax.plot(step, [float(r["valid_eer"]) for r in s["curve"]], "o-", color="C0")
        ax.set_ylabel("valid EER %", color="C0", fontsize=8)
        acc = ax.twinx()  # accuracy on its own axis: EER differences of tenths stay visible
        acc.plot(step, [100 * float(r["train_acc"] or 0) for r in s["curve"]], "s--", color="C1")
        acc.set_ylabel("train accuracy %", color="C1", fontsize=8)
        acc.set_ylim(0, 101)
        ax.set_title(s["name"], fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    a = ap.parse_args()
    out = Path(a.out)
    systems = [s for d in sorted(p for p in out.iterdir() if p.is_dir()) if (s := read_system(d))]
    if not systems:
        raise SystemExit(f"{out}: no <system>/report.json found")
    plot_curves(systems, out / "curves.png")
    md = f"{table(systems)}\n\nLearned layer usage:\n{layer_lines(systems)}\n"
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps([{k: v for k, v in s.items() if k != "curve"} for s in systems],
                                                 indent=1))
    print(md)


if __name__ == "__main__":
    main()
