"""Gradient training of a run: build the model, head, optimizer, data stream and resume state, then
hand them to the loop (:func:`layersv.train.train_cycles`).

Phases (LAP's frozen → joint → large-margin fine-tuning) are configs, not code paths: they differ in
``frz_pretrain``, ``init_from``, learning rates, margin and crop length.  With ``frontend.cache`` the
frozen encoder's hidden states are computed once (:mod:`layersv.frontends.cache`) and the backend
trains on crops of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn

from .. import distributed as dist
from ..checkpoint import load_resume_state
from ..config import Config, ConfigError, save_config, to_dict
from ..config_check import amp_problem
from ..data.augment import build_augmenter
from ..data.dataset import TrainCrops
from ..data.dataset_folder import DatasetFolder, usability_notes
from ..frontends.cache import CachedCrops, CachedFrontend, FeatureCache, all_layers_view, is_frozen
from ..frontends.cache_augment import augmented_training_crops
from ..frontends.hidden_mask import HiddenTimeMask
from ..heads import MarginSchedule, build_head
from ..loggers import build_logger
from ..model import SpeakerEncoder, build_model, read_checkpoint
from ..optim import build_optimizer, build_scheduler, param_groups
from ..train import EMA, TrainState, TrainStep, Trainer, effective_schedule, margin_ramp_length, train_cycles, wrap
from ..utils import count_parameters, set_rng_state
from .folder import Run, open_run, write_metrics


def fit_gradient(cfg: Config, run_dir: Path, ds: DatasetFolder, infos: dict, resume: bool = False,
                 progress: bool = True, command: str = "") -> Run:
    """Train ``cfg`` into ``run_dir`` (or continue it: ``resume``) → the opened :class:`Run` (for testing)."""
    device = dist.setup(cfg.device)
    main = dist.is_main()
    problem = amp_problem(cfg.train.amp, device)
    if problem:
        raise ConfigError(problem)
    run_dir = Path(dist.broadcast_object(str(run_dir)))
    _check_batch(cfg)
    run = open_run(cfg, run_dir, ds, infos, command, seed_offset=dist.rank(), main=main, save=not resume)
    dist.barrier()
    run.device, progress = device, progress and main
    run.log.info(f"world size {dist.world_size()}")
    t = build_trainer(run, resume, progress)
    state = train_cycles(t, write_metrics)
    run.selected = {"step": state.best_step, "valid": {"eer": state.best_eer}}
    return run


def build_trainer(run: Run, resume: bool, progress: bool) -> Trainer:
    """Model, head, optimizer, schedules, crops (or cached crops) and resume state of ``run``."""
    cfg, log, device, main = run.cfg, run.log, run.device, dist.is_main()
    speakers = sorted({s for _, s in run.train_rows})
    model = build_model(cfg).to(device)
    for note in usability_notes(run.infos, model.sample_rate, cfg.data.train_max_sec):
        log.info(f"warning: {note}")
        if main:
            print(f"layersv: warning: {note}", file=sys.stderr, flush=True)
    num_classes = len(speakers) * (1 + len(cfg.data.speed_perturb))  # LAP: each speed factor = new speakers
    head = build_head(cfg.head.head, getattr(model.backend, "head_dim", model.embedding_dim), num_classes,
                      **cfg.head.args).to(device)
    log.info(f"parameters: frontend {count_parameters(model.frontend)} "
             f"(trainable {count_parameters(model.frontend, True)}), backend {count_parameters(model.backend)}, "
             f"head {count_parameters(head)}")
    total, _ = effective_schedule(cfg)
    opt = build_optimizer(cfg.train.optimizer, param_groups(model, head, cfg.train.lr, cfg.train.backbone_lr,
                                                            cfg.train.head_weight_decay),
                          cfg.train.lr, cfg.train.weight_decay)
    sched = build_scheduler(cfg.train, opt, total)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp == "fp16" and device.startswith("cuda"))
    t = Trainer(cfg, run.run_dir, model, head, None, opt, sched, scaler, None, run.ds, run.infos, device, log,
                build_logger(cfg.train.logger, run.run_dir, to_dict(cfg)) if main else
                build_logger("none", run.run_dir, {}), progress=progress)
    t.ema = _restore(t, resume) if resume else _init(t)
    if cfg.train.margin_schedule != "none" and hasattr(head, "margin"):
        tc = cfg.train
        t.margin_fn = MarginSchedule(float(head.margin), tc.margin_start, tc.margin_ramp_begin,
                                     margin_ramp_length(tc, total, log), tc.margin_schedule)
    _data(t, run, {s: i for i, s in enumerate(speakers)}, resume)
    if main and resume:
        write_metrics(run.run_dir, t.state.history)
    return t


def _restore(t: Trainer, resume: bool) -> EMA | None:
    """Load model_last.pt (one file holds everything resume needs: one atomic write) → the EMA, if any."""
    ts = load_resume_state(t.run_dir)
    t.model.load_state_dict(ts["model"])
    t.head.load_state_dict(ts["head"])
    t.opt.load_state_dict(ts["optimizer"])
    t.sched.load_state_dict(ts["scheduler"])
    t.state = TrainState(**ts["state"])
    rngs = ts["rng"]
    set_rng_state(rngs[dist.rank()] if len(rngs) == dist.world_size() else rngs[0])
    if t.state.step >= t.cfg.train.unfreeze_at_step > 0:
        t.model.frontend.unfreeze(freeze_cnn=t.cfg.frontend.frz_cnn)
    t.log.info(f"resumed at step {t.state.step} (cycle {t.state.cycle})")
    ema = _init(t, fresh=False)
    if ema is not None and ts.get("ema") is not None:
        ema.model.load_state_dict(ts["ema"])
    return ema


def _init(t: Trainer, fresh: bool = True) -> EMA | None:
    """``init_from`` a previous phase (fresh runs only); the EMA copy when ``ema_decay`` > 0."""
    if fresh and t.cfg.train.init_from:
        init_from(t.model, t.head, t.cfg.train.init_from, t.log)
    return EMA(t.model, t.cfg.train.ema_decay) if t.cfg.train.ema_decay > 0 else None


def _data(t: Trainer, run: Run, spk_index: dict, resume: bool) -> None:
    """The training stream (waveform crops, or crops of cached hidden states) and the step module."""
    cfg, ds, rows, model = t.cfg, run.ds, run.train_rows, t.model
    talkers = [(str(ds.abspath(p)), spk_index[s]) for p, s in rows]  # speaker_babble material
    augmenter = build_augmenter(cfg.data, model.sample_rate, talkers, progress=t.progress, log=t.log)
    if augmenter is not None:
        _record_aug_kinds(cfg, augmenter.kinds, run.run_dir if dist.is_main() and not resume else None, t.log)
    t.crops = TrainCrops([(str(ds.abspath(p)), p) for p, _ in rows], [spk_index[s] for _, s in rows], run.infos,
                         model.sample_rate, cfg.data.train_max_sec, cfg.seed, cfg.data.fix_to_maxlen, augmenter,
                         tuple(cfg.data.speed_perturb), cfg.data.speed_prob)
    step_model = model
    if cfg.frontend.cache:  # frozen encoder: train and validate from cached hidden states
        if (cfg.data.aug_prob > 0 and cfg.frontend.augment_copies < 1) or cfg.data.speed_perturb \
                or cfg.train.unfreeze_at_step:
            raise ValueError("cache: true works on stored hidden states: it excludes speed_perturb and "
                             "unfreeze_at_step, and augmentation (aug_prob > 0) needs augmented copies in the "
                             "cache (--augment_copies K)")
        t.cache, t.crops, step_model = training_cache(cfg, model, ds, rows, t.crops.labels, t.progress, t.log)
    t.step_mod = wrap(TrainStep(with_time_masks(step_model, cfg), t.head), t.device)
    t.train_rows = list(rows)

    def on_step(step: int):
        if cfg.train.unfreeze_at_step and step == cfg.train.unfreeze_at_step:
            model.frontend.unfreeze(freeze_cnn=cfg.frontend.frz_cnn)
            t.log.info(f"step {step}: encoder unfrozen")
            return wrap(TrainStep(with_time_masks(model, cfg), t.head), t.device)  # DDP must see the new parameters
        return None

    t.on_step = on_step


def with_time_masks(model: SpeakerEncoder, cfg: Config) -> SpeakerEncoder:
    """The training step's model with ``data.hidden_time_masks`` on its frontend's output (shares every
    module with ``model``; the saved model never masks)."""
    d = cfg.data
    if d.hidden_time_masks <= 0:
        return model
    return SpeakerEncoder(HiddenTimeMask(model.frontend, d.hidden_time_masks, d.hidden_time_mask), model.backend,
                          model.frontend_name, model.backend_name, model.backend_args)


def training_cache(cfg: Config, model: SpeakerEncoder, ds, train_rows: list, labels: list[int], progress: bool = True,
                   log=None) -> tuple:
    """For ``fit`` with ``frontend.cache``: (cache, crops dataset, step model sharing ``model.backend``).

    Caches the training utterances and the validation trials' utterances; the test split is scored once
    at the end with the real frontend on waveforms.
    """
    fr = model.frontend
    if not is_frozen(fr):
        raise ConfigError("cache: true needs a frozen frontend (--frz_pretrain true)")
    keys = [p for p, _ in train_rows] + list(ds.trials("valid").utterances)
    root = cfg.frontend.cache_dir or Path(ds.root) / ".layersv_cache"
    cache = all_layers_view(fr, cfg.frontend.frontend, ds, root, cfg.frontend.cache_dtype, keys)
    if cache is not None and log is not None:
        log.info(f"feature cache {cache.path}: hidden states {cache.header['layer_ids']} hold every utterance; "
                 f"reading states {list(fr.layer_ids)} of them")
    if cache is None:
        cache = FeatureCache.open_or_build(fr, cfg.frontend.frontend, ds, keys, root, cfg.frontend.cache_dtype,
                                           device=cfg.device, progress=progress, log=log)
    crop = int(fr.frame_lengths(torch.tensor([round(cfg.data.train_max_sec * fr.sample_rate)]))[0])
    if cfg.data.aug_prob > 0:  # K augmented copies besides the clean states (cache_augment)
        crops = augmented_training_crops(cfg, fr, ds, train_rows, labels, cache, crop, root, progress, log)
    else:
        crops = CachedCrops(cache, [p for p, _ in train_rows], labels, crop, cfg.seed, cfg.data.fix_to_maxlen)
    step_model = SpeakerEncoder(CachedFrontend(fr), model.backend, model.frontend_name, model.backend_name,
                                model.backend_args)
    return cache, crops, step_model


def carry_head_state(head: nn.Module, state: dict) -> tuple[list[str], list[str]]:
    """Load a previous phase's head into ``head``, keeping the rows of the original speakers.

    Classes are indexed ``speaker + num_speakers · (i + 1)`` for speed factor ``i`` (data/dataset.py), so
    the first ``C`` rows along the class axis are the original speakers.  A tensor whose class axis holds
    ``k · C`` rows (phase 1 with speed classes, phase 2 without) is cut to its first ``C`` rows; one with
    fewer rows than ``C`` (speed classes added later) fills the first rows and keeps the fresh init for
    the rest.  Returns (loaded names, skipped names with the reason).
    """
    own = head.state_dict()
    loaded, skipped = [], []
    with torch.no_grad():
        for name, new in own.items():
            old = state.get(name)
            if old is None:
                skipped.append(f"{name} (absent)")
                continue
            if old.shape == new.shape:
                new.copy_(old)
                loaded.append(name)
                continue
            diff = [d for d in range(new.dim()) if old.dim() == new.dim() and old.shape[d] != new.shape[d]]
            if len(diff) != 1:
                skipped.append(f"{name} (shape {tuple(old.shape)} vs {tuple(new.shape)})")
                continue
            d = diff[0]
            a, b = old.shape[d], new.shape[d]
            if a > b and a % b == 0:  # keep the original speakers' rows
                new.copy_(old.narrow(d, 0, b))
            elif b > a and b % a == 0:
                new.narrow(d, 0, a).copy_(old)
            else:
                skipped.append(f"{name} ({a} vs {b} classes: not a multiple)")
                continue
            loaded.append(name)
    return loaded, skipped


def init_from(model: SpeakerEncoder, head, path: str, log) -> None:
    """Initialise from a previous phase (run folder → its best model), and its head (see
    :func:`carry_head_state`: speed-perturbation classes are dropped or added around the original rows)."""
    ckpt = read_checkpoint(path, with_head=True)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    log.info(f"init_from {path}: {len(missing)} missing and {len(unexpected)} unexpected weights")
    hs = ckpt.get("head_state")
    if hs is not None:
        loaded, skipped = carry_head_state(head, hs)
        if skipped:
            log.info(f"init_from: head partly loaded; kept the fresh init of {', '.join(skipped)}")
        else:
            log.info(f"init_from: head loaded ({len(loaded)} tensors)")


def _record_aug_kinds(cfg: Config, kinds: tuple, run_dir: Path | None, log) -> None:
    """The run's config lists the augmentation kinds in use (those without material are dropped)."""
    log.info(f"augmentation on {cfg.data.aug_prob:.0%} of crops, kinds: {', '.join(kinds)}")
    if list(kinds) != list(cfg.data.aug_kinds):
        log.info(f"aug_kinds {cfg.data.aug_kinds} -> {list(kinds)} (no material for the others)")
        cfg.data.aug_kinds = list(kinds)
        if run_dir is not None:
            save_config(cfg, run_dir / "config.yaml")


def _check_batch(cfg: Config) -> None:
    w, a, b = dist.world_size(), cfg.train.accum_steps, cfg.train.batch_size
    if a < 1 or b % (w * a):
        raise ValueError(f"batch_size {b} must be divisible by world size {w} × accum_steps {a}")
