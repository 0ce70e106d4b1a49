"""A config key that nothing reads for the chosen components is an error, not silently ignored.

:func:`check_unread` compares every component-specific key with its default: a key set for a
scheduler, margin schedule or frontend that does not read it (``--warmup_steps 500`` with
``--scheduler onecycle``, ``--n_mfcc 40`` with the ``ssl`` frontend, ``--margin_ramp_frac 0.5`` with
``margin_schedule: none``) raises :class:`~layersv.config.ConfigError` naming the key, who reads it and
how to reset it.  Keys equal to their default are accepted.  A file or command line that switches a
component drops the keys the new one does not read from the files below it (``merge_configs``), so
only keys set together with the component they do not fit are reported.
"""

from __future__ import annotations

from .config import (ALL_FRONTEND_KEYS, FRONTEND_KEYS, MARGIN_KEYS, SPECAUG_KEYS, Config, ConfigError, DataConfig,
                     FrontendConfig, TrainConfig)
from .optim import check_schedule_keys


def _changed(section, defaults, keys) -> list[str]:
    return [k for k in keys if getattr(section, k) != getattr(defaults, k)]


def unread_keys(cfg: Config) -> list[str]:
    """Human-readable problems: keys set away from their default that the chosen components ignore."""
    out = []
    try:
        check_schedule_keys(cfg.train, TrainConfig())
    except ValueError as e:
        out.append(str(e))
    td = TrainConfig()
    if cfg.data.hidden_time_masks == 0 and cfg.data.hidden_time_mask != DataConfig().hidden_time_mask:
        out.append(f"data.hidden_time_mask={cfg.data.hidden_time_mask!r} is not read with hidden_time_masks 0 "
                   f"(set --hidden_time_masks N, or --hidden_time_mask {DataConfig().hidden_time_mask})")
    if cfg.train.margin_schedule == "none":
        for k in _changed(cfg.train, td, MARGIN_KEYS):
            out.append(f"train.{k}={getattr(cfg.train, k)!r} is not read with margin_schedule none "
                       f"(set --margin_schedule, or --{k} {getattr(td, k)})")
    fd, fr = FrontendConfig(), cfg.frontend.frontend
    reads = FRONTEND_KEYS.get(fr)
    if reads is not None:
        if fr in ("fbank", "mfcc") and not cfg.frontend.spec_augment:
            reads = tuple(k for k in reads if k not in SPECAUG_KEYS)
        for k in _changed(cfg.frontend, fd, [k for k in ALL_FRONTEND_KEYS if k not in reads]):
            users = [f for f, ks in FRONTEND_KEYS.items() if k in ks]
            why = "spec_augment is off" if k in SPECAUG_KEYS and fr in ("fbank", "mfcc") else \
                f"read by the {', '.join(users)} frontend{'s' if len(users) > 1 else ''}"
            out.append(f"frontend.{k}={getattr(cfg.frontend, k)!r} is not read by the {fr} frontend ({why}); "
                       f"remove it or reset it: --{k} {getattr(fd, k)}")
    if cfg.model.model == "FinetuneWV2" and not (fr == "ssl" and cfg.frontend.cls_token):
        out.append("model FinetuneWV2 reads the CLS output of the encoder: it needs --frontend ssl --cls_token true "
                   "(or use FinetuneWV2-CLSHead, a CLS in a small transformer of the backend)")
    if cfg.eval.qmf_features not in ("seed9", "minmax7"):
        out.append(f"eval.qmf_features={cfg.eval.qmf_features!r}: valid feature sets are seed9, minmax7")
    if not cfg.data.speed_perturb and cfg.data.speed_prob != type(cfg.data)().speed_prob:
        out.append(f"data.speed_prob={cfg.data.speed_prob} is not read without speed_perturb factors")
    if cfg.data.eval_data != DataConfig().eval_data:
        out.append(f"data.eval_data={cfg.data.eval_data!r} is not read when training (the run is tested on its own "
                   "test trials); score another dataset afterwards: layersv eval RUN --eval_data DIR")
    amp = amp_problem(cfg.train.amp, cfg.device)
    if amp:
        out.append(amp)
    return out


def amp_problem(amp: str, device: str) -> str:
    """Why ``train.amp`` cannot work on ``device`` ("" when it can): mixed precision is CUDA autocast only."""
    if amp == "none" or str(device).startswith("cuda"):
        return ""
    return (f"train.amp={amp!r} needs a CUDA device (device {device!r}): mixed precision is CUDA autocast only; "
            "on a CPU use --amp none (full float32), or train with --device cuda")


def check_unread(cfg: Config) -> None:
    """Raise ConfigError listing every key that nothing reads for the chosen components."""
    problems = unread_keys(cfg)
    if problems:
        raise ConfigError("config keys that nothing reads:\n  " + "\n  ".join(problems))
