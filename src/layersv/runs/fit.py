"""``fit``: one entry for every model — check the data, fit the backend, test the selected model.

The fitter is chosen by the backend's ``trainable`` attribute (:func:`layersv.backends.is_trainable`),
never by its name: gradient training (:mod:`.gradient`) or a fitted, training-free backend
(``Stats``: :mod:`.stats`).  Both leave a run folder of the same layout; ``fit`` then scores the
test trials once with the selected model (:func:`.evaluate.evaluate_split`) unless ``skiptest``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import distributed as dist
from ..backends import is_trainable
from ..config import Config
from .evaluate import evaluate_split
from .folder import Run, new_run_dir, open_data
from .gradient import fit_gradient
from .stats import fit_stats


def fit(cfg: Config, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        command: str = "") -> Path:
    """Train (or fit) ``cfg`` into ``run_dir`` (created), or continue it when ``resume``; returns the run folder.

    The dataset is validated before the run folder is created; a start that fails before the first
    checkpoint removes the folder it created, so no half-made run is left behind.
    """
    ds, infos = open_data(cfg)
    run_dir = Path(run_dir or new_run_dir(None))
    created = not run_dir.exists()
    try:
        if is_trainable(cfg.model.model):
            run = fit_gradient(cfg, run_dir, ds, infos, resume, progress, command)
        else:
            run = fit_stats(cfg, run_dir, ds, infos, progress, command)
    except BaseException:
        if created and dist.is_main() and not any((run_dir / f).exists() for f in ("model_last.pt", "model_last.json")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    test(run, progress and dist.is_main())
    dist.teardown()
    return run.run_dir


def test(run: Run, progress: bool = True) -> dict | None:
    """Score the test trials with the run's selected model (rank 0; not with ``train.skiptest``)."""
    if not dist.is_main() or run.cfg.train.skiptest:
        return None
    return evaluate_split(run.run_dir, run.cfg, run.ds, run.infos, run.train_rows, device=run.device,
                          progress=progress, log=run.log, selected=run.selected)
