"""A reduced recipes/speechocean762/run.sh on real speech and the real Whisper-base (when ../shared has them).

10 speakers × 4 utterances, the first 2 s of each, 20 training steps: the whole pipeline (prepare →
cache with one augmented copy → probe → Stats with PLDA → SUPERB on hidden states 0-1 of the all-layers
cache and its augmented copy, pooled-layer embedding, PLDA-selected → eval from the cache → fusion of the two → summary) runs and writes
a report per system; the numbers are not judged here (too few speakers), only that they are real EERs
of a working system and the files the README promises exist.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "data" / "speechocean762-train" / "opus"
WHISPER = SHARED / "models" / "whisper-base"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "speechocean762"


@pytest.mark.skipif(not (CORPUS.is_dir() and WHISPER.is_dir()), reason="../shared corpus or whisper-base absent")
def test_reduced_recipe_runs_end_to_end(tmp_path):
    src = tmp_path / "corpus"
    for spk in sorted(p.name for p in CORPUS.iterdir())[:10]:
        for f in sorted((CORPUS / spk).iterdir())[:4]:
            wav, sr = sf.read(str(f), frames=2 * 16000, dtype="float32")
            (src / spk).mkdir(parents=True, exist_ok=True)
            sf.write(str(src / spk / f"{f.stem}.flac"), wav, sr)
    out = tmp_path / "out"
    env = {**os.environ, "SYSTEMS": "stats superb_pooled", "STEPS": "20", "AUG_COPIES": "1"}
    r = subprocess.run(["bash", str(RECIPE / "run.sh"), str(src), str(WHISPER), str(out)], env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for system in ("stats", "superb_pooled"):
        rep = json.loads((out / system / "report.json").read_text())
        assert rep["trials"] > 0 and 0.0 <= rep["stages"]["cosine"]["eer"] <= 100.0
        assert "valid_stages" in rep
    assert "plda" in json.loads((out / "stats" / "report.json").read_text())["stages"]
    assert {"asnorm", "plda", "qmf"} <= set(json.loads((out / "superb_pooled" / "report.json").read_text())["stages"])
    fused = json.loads((out / "fusion" / "report.json").read_text())  # Stats + SUPERB-pooled, fitted on valid
    assert fused["fusion"]["names"] == ["stats:plda", "superb_pooled:plda"] and "cllr" in fused["stages"]["fusion"]
    table = (out / "results.md").read_text()
    assert "| stats |" in table and "| superb_pooled |" in table and "| fusion | fusion | fusion |" in table
    caches = list((out / "data" / ".layersv_cache").iterdir())
    assert len(caches) == 2, caches  # clean + 1 copy: states 0-1 were read from them, not encoded again
    log = (out / "superb_pooled" / "training.log").read_text()
    assert "reading states [0, 1]" in log and "augmented copy 1: reading hidden states [0, 1]" in log
    assert "60% of crops from one of 1 augmented copies" in log
    model = json.loads((out / "superb_pooled" / "model_best.json").read_text())
    assert "pooled" in json.dumps(model)
    assert (out / "curves.png").is_file() and (out / "probe").is_dir()
