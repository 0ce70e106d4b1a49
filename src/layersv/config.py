"""Typed configuration: dataclasses + YAML with ``extends:`` + seed-style ``--key value`` overrides.

A run's configuration is one :class:`Config` made of sections (``data``, ``frontend``,
``model``, ``head``, ``train``, ``eval``).  Most sections are plain dataclasses; the
``model`` and ``head`` sections name a registry entry and carry that entry's constructor
arguments in ``args`` -- the constructor signature *is* the schema, so adding a backend
never touches this file.

YAML files may start with ``extends: <file or built-in name>`` (a list is allowed) and
then list only the keys they change.  Command-line overrides use *leaf* names, as in the
seeds (``--batch_size 64 --frz_pretrain --margin 0.3``); every value is type-checked
against the field it sets, and an unknown key is an error naming the closest valid keys.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .utils import atomic_write_text

BUILTIN_CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad file)."""


@dataclass
class DataConfig:
    data_dir: str = ""  # dataset folder (data.yaml, train.csv, *_trials.csv)
    eval_data: str = ""  # evaluate on another dataset folder's test trials
    train_max_sec: float = 3.0  # training crop (seconds)
    fix_to_maxlen: bool = True  # wrap-pad shorter clips to the crop length
    eval_max_sec: float = 0.0  # 0 = full utterances at evaluation
    eval_batch_sec: float = 120.0  # audio seconds per length-bucketed evaluation batch
    max_train_utts: int = 0  # 0 = all (subset for quick experiments)
    hidden_time_masks: int = 0  # training: time masks per crop on the frontend's hidden states, all layers (0 = off)
    hidden_time_mask: int = 20  # max width of each hidden-state time mask (frames)
    aug_prob: float = 0.0  # probability of one augmentation per crop (LAP: 0.6); 0 = off
    musan_list: str = ""  # folder or musan.csv from `layersv prepare musan`
    rir_list: str = ""  # folder or rir.csv from `layersv prepare rir`
    # kinds drawn uniformly (layersv.data.augment.KINDS): reverb, noise, music, babble (MUSAN / RIR corpus);
    # sim_reverb, colored_noise, speaker_babble, telephone (no corpus needed)
    # [auto]: reverb/noise/music/babble from the MUSAN/RIR lists given, corpus-free kinds otherwise
    aug_kinds: list = field(default_factory=lambda: ["auto"])
    noise_snr: list = field(default_factory=lambda: [0.0, 15.0])  # dB range (low, high)
    music_snr: list = field(default_factory=lambda: [5.0, 15.0])
    babble_snr: list = field(default_factory=lambda: [13.0, 20.0])
    babble_count: list = field(default_factory=lambda: [4, 7])  # MUSAN speech clips per babble
    babble_speakers: list = field(default_factory=lambda: [3, 7])  # speaker_babble: other training speakers
    noise_colors: list = field(default_factory=lambda: ["white", "pink", "brown"])  # colored_noise colours
    rir_bank: str = ""  # sim_reverb: simulated RIR bank folder ("" = <data_dir>/rir_bank, built on first use)
    rir_bank_rooms: int = 200  # rooms in the simulated RIR bank
    rir_bank_seed: int = 0  # seed of the simulated RIR bank
    telephone_band: list = field(default_factory=lambda: [300.0, 3400.0])  # telephone: pass band (Hz)
    telephone_mulaw: bool = True  # telephone: 8-bit mu-law coding after the 8 kHz round trip
    speed_perturb: list = field(default_factory=list)  # e.g. [0.9, 1.1]: each factor = new speaker classes (LAP)
    speed_prob: float = 0.4  # probability of a speed factor (LAP: 0.2 each of 0.9 / 1.1)


@dataclass
class FrontendConfig:
    frontend: str = "ssl"  # registry key: ssl | whisper | fbank | mfcc | sincnet (see layersv.frontends)
    backbone_cfg: str = "tiny-wavlm"  # HF hub id, local directory, or a built-in tiny-<family>
    use_pretrain: bool = True  # load pretrained weights (tiny-* are always random)
    frz_pretrain: bool = False  # freeze the whole encoder
    frz_cnn: bool = True  # keep the CNN feature encoder frozen when the encoder trains
    keep_layer0: bool = True  # keep hidden state 0 (input to the first transformer layer)
    layers: list = field(default_factory=list)  # subset of hidden-state indices; [] = all
    grad_checkpointing: bool = False
    pad_30s: bool = False  # whisper: pad every clip to 30 s as the original (slow; default slices positions)
    cls_token: bool = False  # ssl: prepend an all-ones CLS inside the encoder (FinetuneWV2's seed model)
    raw_waveform: bool = False  # ssl: feed the raw waveform, no zero-mean/unit-variance (the seeds' input)
    n_mels: int = 80  # fbank / mfcc: mel filters
    n_mfcc: int = 24  # mfcc: cepstral coefficients (24 or 80 in the seeds)
    mfcc_db: bool = False  # mfcc: log-mels in dB (10·log10) before the DCT (X-vector seed); false = ln
    feat_norm: str = "mean"  # fbank / mfcc: mean | cmvn (mean+variance) | l2 (per-frame L2) | none
    spec_augment: bool = False  # fbank / mfcc: SpecAugment time/frequency masks while training
    time_mask: int = 10  # max width of each time mask (frames)
    freq_mask: int = 8  # max width of each frequency mask (bins)
    n_time_masks: int = 2  # time masks per item (ECAPA's FbankAug: 1)
    n_freq_masks: int = 2  # frequency masks per item (ECAPA's FbankAug: 1)
    sinc_filters: int = 80  # sincnet: band-pass filters
    sinc_kernel: int = 251  # sincnet: taps (odd)
    sinc_pool: int = 3  # sincnet: max-pool size = frame stride (samples)
    cache: bool = False  # frozen encoder: train from a memory-mapped cache of hidden states
    cache_dir: str = ""  # where caches live ("" = <data_dir>/.layersv_cache)
    cache_dtype: str = "float16"  # float16 | float32
    augment_copies: int = 0  # cache: augmented copies per training utterance (used when aug_prob > 0)
    augment_seed: int = 0  # cache: seed of the augmented copies (independent of the training seed)


@dataclass
class ModelConfig:
    model: str = "SUPERB"  # backend registry key
    args: dict = field(default_factory=dict)  # constructor arguments of the backend


@dataclass
class HeadConfig:
    head: str = "aam"  # head registry key
    args: dict = field(default_factory=dict)  # constructor arguments of the head


@dataclass
class TrainConfig:
    batch_size: int = 32
    nb_total_step: int = 1000  # optimizer steps
    nb_steps_eval: int = 100  # steps per cycle (validation after each)
    optimizer: str = "adam"  # adam | adamw | sgd | rmsprop
    lr: float = 3e-3  # peak lr of backend + head
    backbone_lr: float = 1e-4  # peak lr of the encoder when it trains
    weight_decay: float = 0.0
    head_weight_decay: float = -1.0  # weight decay of the head (ECAPA seed: 2e-4); < 0 = weight_decay
    scheduler: str = "onecycle"  # onecycle | cosine | cosine_restarts | cyclic | tristage | constant
    pct_start: float = 0.1  # onecycle / cosine warm-up fraction of the steps (cosine: when warmup_steps = 0)
    anneal_strategy: str = "cos"  # onecycle annealing: cos | linear (ExploreWV2)
    warmup_steps: int = 0  # cosine / cosine_restarts linear warm-up from min_lr (steps)
    cycle_steps: int = 0  # cosine_restarts period / cyclic half-period (0 = automatic)
    cycle_mult: float = 1.0
    restart_decay: float = 1.0
    min_lr: float = 0.0
    grad_clip: float = 5.0  # global norm; 0 = off
    accum_steps: int = 1  # gradient accumulation: micro-batches per optimizer step
    amp: str = "none"  # none | bf16 | fp16 (autocast; used where a GPU exists)
    ema_decay: float = 0.0  # exponential moving average of the weights (0 = off); validated and saved
    unfreeze_at_step: int = 0  # ExploreWV2: unfreeze the encoder (not its CNN) at this step (0 = never)
    logger: str = "none"  # none | tensorboard | wandb | neptune
    margin_schedule: str = "none"  # none | linear | log | exp: ramp the head margin from margin_start
    margin_start: float = 0.0
    margin_ramp_begin: int = 0  # step where the ramp starts
    margin_ramp_steps: int = 0  # ramp length (steps); the head's margin is reached at the end
    margin_ramp_frac: float = 0.0  # ramp length as a fraction of the total steps (LAP: 20 of 40 epochs = 0.5)
    init_from: str = ""  # run dir or checkpoint to initialise from (phases)
    skiptest: bool = False
    eval_test_each_cycle: bool = False
    valid_scoring: str = "cosine"  # cycle validation (model selection): cosine | plda (fitted on training embeddings each cycle)
    quickrun: bool = False  # few steps per cycle, 3 cycles: a smoke run


@dataclass
class EvalConfig:
    score_normalize: bool = False
    score_calibrate: bool = False
    mean_sub_utts: int = 2000  # training utterances used for the mean-subtraction mean
    cohort: str = "auto"  # AS-norm cohort: auto (cohort.csv if present, else train) | train | cohort_csv
    cohort_size: int = 0  # max cohort speakers (speaker mean embeddings); 0 = all (LAP: whole training set)
    cohort_utts_per_speaker: int = 0  # utterances embedded per cohort speaker; 0 = all (LAP)
    asnorm_topk: int = 600  # top-k cohort scores per side (LAP: 600)
    calibration_c: float = 1.0  # inverse L2 strength of the QMF logistic regression
    feature_cache: bool = True  # frozen encoder: embed from its `layersv cache` when that holds the files
    qmf_features: str = "seed9"  # seed9 (LAP's 9 ordered features, L1 norms included) | minmax7 (symmetric)
    n_crops: int = 0  # 0 = full utterances; N = mean of N evenly spaced crops (ECAPA-style)
    crop_sec: float = 3.0  # crop length (s) when n_crops > 0
    embedding_cache: bool = True  # cache embeddings in run_dir/embeddings/<set>.npz
    score_plda: bool = False  # add a two-covariance PLDA stage fitted on training embeddings
    plda_dim: int = 0  # LDA size before PLDA (0 = min(embedding size, speakers - 1))
    plda_speakers: int = 2000  # max training speakers used to fit PLDA
    plda_utts_per_speaker: int = 10


@dataclass
class Config:
    description: str = "Untitled"
    seed: int = 42
    device: str = "cpu"
    workers: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


SECTIONS = ("data", "frontend", "model", "head", "train", "eval")

# ----------------------------------------------------------------------------- component-specific keys
# Which keys each chosen component reads (used to reject unread keys, layersv.config_check, and to
# drop a lower file's keys when an upper file or the command line switches the component).
SCHEDULE_KEYS = ("pct_start", "anneal_strategy", "warmup_steps", "cycle_steps", "cycle_mult", "restart_decay",
                 "min_lr")
SCHEDULER_KEYS: dict[str, tuple[str, ...]] = {  # the train.* schedule keys each scheduler reads (optim.py)
    "onecycle": ("pct_start", "anneal_strategy"),
    "cosine": ("pct_start", "warmup_steps", "min_lr"),
    "cosine_restarts": ("warmup_steps", "cycle_steps", "cycle_mult", "restart_decay", "min_lr"),
    "cyclic": ("cycle_steps", "min_lr"),
    "tristage": ("min_lr",),
    "constant": (),
}
MARGIN_KEYS = ("margin_start", "margin_ramp_begin", "margin_ramp_steps", "margin_ramp_frac")
SPECAUG_KEYS = ("time_mask", "freq_mask", "n_time_masks", "n_freq_masks")
_SPECTRAL = ("n_mels", "feat_norm", "spec_augment") + SPECAUG_KEYS
FRONTEND_KEYS: dict[str, tuple[str, ...]] = {  # frontend-specific keys each frontend reads
    "ssl": ("raw_waveform", "cls_token"),
    "whisper": ("pad_30s",),
    "fbank": _SPECTRAL,
    "mfcc": _SPECTRAL + ("n_mfcc", "mfcc_db"),
    "sincnet": ("sinc_filters", "sinc_kernel", "sinc_pool"),
}
ALL_FRONTEND_KEYS = tuple(dict.fromkeys(k for ks in FRONTEND_KEYS.values() for k in ks))
COMPONENT_SWITCHES: tuple[tuple[str, str, Callable[[Any], set]], ...] = (
    ("train", "scheduler", lambda v: set(SCHEDULE_KEYS) - set(SCHEDULER_KEYS.get(v, SCHEDULE_KEYS))),
    ("train", "margin_schedule", lambda v: set(MARGIN_KEYS) if v == "none" else set()),
    ("frontend", "frontend", lambda v: set(ALL_FRONTEND_KEYS) - set(FRONTEND_KEYS.get(v, ALL_FRONTEND_KEYS))),
)
ALTERNATIVES = (("train", "margin_ramp_steps", "margin_ramp_frac"), ("train", "warmup_steps", "pct_start"))


# ----------------------------------------------------------------------------- helpers


def _closest(name: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    return f"did you mean {', '.join(near)}?" if near else f"valid keys: {', '.join(sorted(valid))}"


def signature_defaults(fn: Callable, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword arguments (with defaults) of a constructor: the schema of a registry entry."""
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            continue
        d = p.default
        out[name] = list(d) if isinstance(d, tuple) else d
    return out


def coerce(value: Any, like: Any, key: str) -> Any:
    """Convert ``value`` (a YAML value or a CLI string) to the type of ``like``; raise on mismatch."""
    if like is None:
        return value
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"--{key}: expected a boolean (true/false), got {value!r}")
    if isinstance(like, int):
        if isinstance(value, bool):
            raise ConfigError(f"--{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise ConfigError(f"--{key}: expected an integer, got {value!r}") from None
    if isinstance(like, float):
        if isinstance(value, bool):
            raise ConfigError(f"--{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--{key}: expected a number, got {value!r}") from None
    if isinstance(like, (list, tuple)):
        if isinstance(value, str):
            s = value.strip()
            if s.startswith("["):
                try:
                    value = ast.literal_eval(s)
                except (ValueError, SyntaxError):
                    raise ConfigError(f"--{key}: cannot parse list {value!r}") from None
            else:
                value = [v for v in s.split(",") if v != ""]
                value = [_auto(v) for v in value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"--{key}: expected a list, got {value!r}")
        return list(value)
    if isinstance(like, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"--{key}: expected a mapping, got {value!r}")
        return value
    if isinstance(like, str):
        if isinstance(value, (dict, list)):
            raise ConfigError(f"--{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _auto(s: str) -> Any:
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError):
        return s


# ----------------------------------------------------------------------------- YAML


def resolve_config_path(name: str | os.PathLike, base_dir: Path | None = None) -> Path:
    """A config file: a path (absolute, or relative to ``base_dir``/cwd) or a built-in name."""
    p = Path(name)
    candidates = [p] if p.is_absolute() else [(base_dir or Path.cwd()) / p, Path.cwd() / p]
    candidates += [BUILTIN_CONFIG_DIR / p, BUILTIN_CONFIG_DIR / f"{p}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    builtin = sorted(x.stem for x in BUILTIN_CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"config file {str(name)!r} not found (built-in configs: {', '.join(builtin)})")


def load_yaml_with_extends(path: str | os.PathLike, _seen: tuple = ()) -> dict:
    """Read a YAML config, recursively merging the files named by ``extends:`` below it."""
    path = resolve_config_path(path)
    if path in _seen:
        raise ConfigError(f"circular extends: {' -> '.join(map(str, _seen + (path,)))}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping")
    parents = raw.pop("extends", None) or []
    parents = [parents] if isinstance(parents, str) else parents
    merged: dict = {}
    for parent in parents:
        parent_cfg = load_yaml_with_extends(resolve_config_path(parent, path.parent), _seen + (path,))
        merged = merge_configs(merged, parent_cfg)
    return merge_configs(merged, raw)


def merge_configs(low: dict, upper: dict) -> dict:
    """``deep_merge`` of two config dicts, except that a section whose registry name changes
    (``head.head``, ``model.model``) does not inherit the lower file's ``args`` (they belong to
    another class), and a switched component (``train.scheduler``, ``train.margin_schedule``,
    ``frontend.frontend``) does not inherit the lower file's keys that the new one does not read."""
    low = dict(low)
    for sec in ("head", "model"):
        lo, up = low.get(sec), upper.get(sec)
        if isinstance(lo, dict) and isinstance(up, dict) and sec in up and sec in lo and up[sec] != lo[sec]:
            low[sec] = {k: v for k, v in lo.items() if k != "args"}
    for sec, sel, unread in COMPONENT_SWITCHES:
        lo, up = low.get(sec), upper.get(sec)
        if isinstance(lo, dict) and isinstance(up, dict) and sel in up and up[sel] != lo.get(sel):
            drop = unread(up[sel])
            low[sec] = {k: v for k, v in lo.items() if k not in drop}
    for sec, a, b in ALTERNATIVES:  # setting one of two alternative keys drops the lower file's other one
        lo, up = low.get(sec), upper.get(sec)
        if isinstance(lo, dict) and isinstance(up, dict):
            for mine, other in ((a, b), (b, a)):
                if mine in up and other not in up:
                    lo = {k: v for k, v in lo.items() if k != other}
            low[sec] = lo
    return deep_merge(low, upper)


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


# ----------------------------------------------------------------------------- build / override


def _section_fields(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


def from_dict(d: dict, registries: dict[str, Callable[[str], Callable]] | None = None) -> Config:
    """Build a :class:`Config` from a nested dict, rejecting unknown keys.

    ``registries`` maps ``"model"``/``"head"`` to a function returning the constructor for a
    registry name; its keyword defaults fill and validate ``args``.
    """
    cfg = Config()
    top = {f.name for f in dataclasses.fields(Config)} - set(SECTIONS)
    for k, v in d.items():
        if k in top:
            setattr(cfg, k, coerce(v, getattr(cfg, k), k))
        elif k in SECTIONS:
            if not isinstance(v, dict):
                raise ConfigError(f"section {k!r} must be a mapping")
            sec = getattr(cfg, k)
            valid = _section_fields(sec)
            for kk, vv in v.items():
                if kk not in valid:
                    raise ConfigError(f"unknown key {k}.{kk}: {_closest(kk, list(valid))}")
                setattr(sec, kk, coerce(vv, valid[kk], kk) if kk != "args" else dict(vv or {}))
        else:
            raise ConfigError(f"unknown top-level key {k!r}: {_closest(k, list(top) + list(SECTIONS))}")
    fill_registry_args(cfg, registries)
    return cfg


def fill_registry_args(cfg: Config, registries: dict[str, Callable[[str], Callable]] | None) -> None:
    """Complete ``model.args``/``head.args`` with constructor defaults and type-check them."""
    if not registries:
        return
    for sec_name, key in (("model", "model"), ("head", "head")):
        if sec_name not in registries:
            continue
        sec = getattr(cfg, sec_name)
        ctor = registries[sec_name](getattr(sec, key))
        defaults = signature_defaults(ctor, skip=("in_layers", "in_dim", "embedding_dim_in", "num_classes", "in_features"))
        for k, v in sec.args.items():
            if k not in defaults:
                raise ConfigError(
                    f"unknown argument {k!r} for {sec_name} {getattr(sec, key)!r}: {_closest(k, list(defaults))}"
                )
        sec.args = {k: coerce(sec.args.get(k, d), d, k) if k in sec.args else d for k, d in defaults.items()}


def leaf_index(cfg: Config) -> dict[str, tuple[str | None, str]]:
    """Map every overridable key to (section, field), ``args`` entries included.

    Each key is reachable by its leaf name (``batch_size``) when that name is unique, and
    always by its dotted name (``train.batch_size``, ``head.margin``).
    """
    idx: dict[str, tuple[str | None, str]] = {}
    seen: dict[str, int] = {}
    for f in dataclasses.fields(Config):
        if f.name not in SECTIONS:
            idx[f.name] = (None, f.name)
    for s in SECTIONS:
        sec = getattr(cfg, s)
        for name in _section_fields(sec):
            names = [(a, (s, f"args.{a}")) for a in sec.args] if name == "args" else [(name, (s, name))]
            for leaf, target in names:
                idx[f"{s}.{leaf}"] = target
                seen[leaf] = seen.get(leaf, 0) + 1
                idx.setdefault(leaf, target)
    for leaf, n in seen.items():  # ambiguous leaves need the dotted form
        if n > 1:
            idx.pop(leaf, None)
    return idx


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Set leaf keys (``{"batch_size": "64"}``), type-checked; unknown keys raise ConfigError."""
    idx = leaf_index(cfg)
    for key, value in overrides.items():
        if key not in idx:
            raise ConfigError(f"unknown config key --{key}: {_closest(key, list(idx))}")
        sec_name, name = idx[key]
        target = cfg if sec_name is None else getattr(cfg, sec_name)
        if name.startswith("args."):
            a = name[5:]
            target.args[a] = coerce(value, target.args[a], key)
        else:
            setattr(target, name, coerce(value, getattr(target, name), key))
    return cfg


def parse_override_args(argv: list[str]) -> dict[str, Any]:
    """``['--batch_size', '64', '--frz_pretrain', '--lr=1e-3']`` → dict; a bare flag means true."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise ConfigError(f"unexpected argument {tok!r} (overrides look like --key value)")
        key = tok[2:]
        if "=" in key:
            key, val = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not (argv[i + 1].startswith("--") and len(argv[i + 1]) > 2):
            val = argv[i + 1]
            i += 2
        else:
            val = "true"
            i += 1
        out[key.replace("-", "_")] = val
    return out


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, indent=4))


def load_config(path: str | os.PathLike, registries: dict | None = None) -> Config:
    return from_dict(load_yaml_with_extends(Path(path).resolve()), registries)


__all__ = [
    "Config", "DataConfig", "FrontendConfig", "ModelConfig", "HeadConfig", "TrainConfig", "EvalConfig",
    "ConfigError", "load_yaml_with_extends", "from_dict", "apply_overrides", "parse_override_args",
    "save_config", "load_config", "to_dict", "signature_defaults", "coerce"
]
