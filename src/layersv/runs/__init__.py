"""The run floor: a run folder from start to finish.

* :mod:`.assemble`: a new run's config (built-in ``base`` ← model recipe ← file ← ``--key value``);
* :mod:`.folder`: open a run (logger, seed, command line, dataset check, training rows), metrics.csv,
  load a finished run (config, dataset, selected model);
* :mod:`.fit`: ``fit`` — the fitter chosen by the backend's ``trainable`` attribute
  (:mod:`.gradient`: the gradient loop of :mod:`layersv.train`; :mod:`.stats`: the fitted ``Stats``
  backend), then the test report;
* :mod:`.evaluate`: scoring stages, report, stored operating points (``layersv eval``);
* :mod:`.verify`: one pair of files with a run's stored scoring state (``layersv verify``);
* :mod:`.fuse`: several evaluated runs → one system, fusion fitted on validation (``layersv fuse``).
"""

from __future__ import annotations

from .assemble import assemble_config, recipe_for_model
from .evaluate import evaluate_run, evaluate_split, fit_scoring, train_mean
from .fit import fit
from .folder import (METRIC_COLUMNS, FinishedRun, Run, load_run, new_run_dir, open_data, open_run, resume_config,
                     training_rows, write_metrics)
from .fuse import fuse_runs
from .gradient import carry_head_state, fit_gradient, init_from
from .stats import fit_stats
from .verify import verify

__all__ = ["METRIC_COLUMNS", "FinishedRun", "Run", "assemble_config", "carry_head_state", "evaluate_run",
           "evaluate_split", "fit", "fit_gradient", "fit_scoring", "fit_stats", "fuse_runs", "init_from", "load_run",
           "new_run_dir", "open_data", "open_run", "recipe_for_model", "resume_config", "train_mean", "training_rows",
           "verify", "write_metrics"]
