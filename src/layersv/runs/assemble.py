"""Assemble a new run's config: built-in ``base`` ← model recipe ← ``--config FILE`` ← ``--key value``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import (Config, ConfigError, apply_overrides, from_dict, load_yaml_with_extends, merge_configs,
                      resolve_config_path, signature_defaults)
from ..config_check import check_unread
from ..registries import registries


def recipe_for_model(model: str) -> Path | None:
    """The built-in config named after a model (``configs/<model>.yaml``), if any."""
    try:
        return resolve_config_path(model)
    except ConfigError:
        return None


def assemble_config(data: str, model: str, config_file: str | None, overrides: dict[str, Any],
                    use_recipe: bool = True) -> Config:
    """Built-in ``base`` ← model recipe ← ``--config FILE`` ← ``--key value`` overrides.

    ``use_recipe=False`` skips ``configs/<model>.yaml`` (for a config file that is a complete recipe
    of its own, like ``quickstart``).
    """
    d = load_yaml_with_extends("base")
    rec = recipe_for_model(model) if use_recipe else None
    if rec is not None:
        d = merge_configs(d, load_yaml_with_extends(rec))
    if config_file:
        d = merge_configs(d, load_yaml_with_extends(config_file))
    d.setdefault("model", {})["model"] = model
    d.setdefault("data", {})["data_dir"] = str(Path(data).expanduser().resolve()) if data else ""
    overrides = dict(overrides)
    for sec in ("head", "frontend"):  # a registry name changed on the command line: drop the old entry's args
        for key in (sec, f"{sec}.{sec}"):
            if key in overrides:
                new = overrides.pop(key)
                if sec == "head" and new != d.get("head", {}).get("head"):
                    d["head"]["args"] = _compatible_args(get_head(new), d["head"].get("args") or {})
                d = merge_configs(d, {sec: {sec: new}}) if sec == "frontend" else d
                d.setdefault(sec, {})[sec] = new
    switches = ("scheduler", "margin_schedule", "margin_ramp_steps", "margin_ramp_frac", "warmup_steps", "pct_start")
    for sec, sel in (("train", k) for k in switches):  # drop the keys a switch leaves unread (merge_configs)
        for key in (sel, f"{sec}.{sel}"):
            if key in overrides:
                d = merge_configs(d, {sec: {sel: overrides.pop(key)}})
    cfg = apply_overrides(from_dict(d, registries()), overrides)
    check_unread(cfg)
    return cfg


def get_head(name: str):
    return registries()["head"](name)


def _compatible_args(ctor, args: dict) -> dict:
    ok = signature_defaults(ctor)
    return {k: v for k, v in args.items() if k in ok}
