"""On-the-fly training augmentation of LAP (Kim et al., "Rethinking Leveraging Pre-Trained Multi-Layer
Representations for Speaker Verification", seeds-spec §4.5), after voxceleb_trainer.

With probability ``prob`` one augmentation is drawn uniformly from the available kinds
(:data:`KINDS`, a plain-dict registry: kind → the material it needs).  With an external corpus:
  * ``reverb``: a random RIR, energy-normalised, full convolution truncated to the input length;
  * ``noise``: one MUSAN-noise segment at SNR ~ U[noise_snr];
  * ``music``: one MUSAN-music segment at SNR ~ U[music_snr];
  * ``babble``: 4–7 MUSAN-speech segments, each at SNR ~ U[babble_snr].
Without one (issue 11 §2):
  * ``sim_reverb``: a room of the seeded simulated RIR bank (:mod:`layersv.data.rir_bank`), as ``reverb``;
  * ``colored_noise``: white / pink / brown Gaussian noise (:mod:`layersv.data.colored_noise`),
    SNR ~ U[noise_snr];
  * ``speaker_babble``: one random segment of each of 3–7 *other* training speakers (never the crop's
    own speaker), each scaled to unit power, summed, the sum at SNR ~ U[babble_snr].  The SNR is
    that of the whole babble (MUSAN ``babble`` sets it per talker, ~6–8 dB louder in total): voices
    of the training set are far more confusable with the target speaker than MUSAN speech;
  * ``telephone``: 300–3400 Hz band, 8 kHz round trip, optional µ-law (:mod:`layersv.data.telephone`).
SNR is exact: ``gain = sqrt(P_clean / (P_noise · 10^(SNR/10)))`` with mean powers (LAP adds 1e-4 to
both powers, which biases the SNR of quiet clips; fixed here).  Noise is wrap-padded/cropped to the
input length at a random offset.  Speed perturbation (0.9 / 1.1 as new speaker classes) lives in
:class:`layersv.data.dataset.TrainCrops`, since it changes the label.
All randomness comes from the ``rng`` passed in (the stream index's generator), so it is deterministic.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy.signal import fftconvolve

from .audio import audio_info, load_audio, resample
from .colored_noise import COLORS, colored_noise
from .dataset_folder import DatasetError
from .rir_bank import BankParams, bank_folder, open_rir_bank
from .telephone import telephone

KINDS = {  # kind → the material it needs (None: nothing)
    "reverb": "a RIR list (rir_list)", "noise": "MUSAN (musan_list)", "music": "MUSAN (musan_list)",
    "babble": "MUSAN (musan_list)", "sim_reverb": "the simulated RIR bank (rir_bank)", "colored_noise": None,
    "speaker_babble": "at least two training speakers", "telephone": None,
}
CORPUS_KINDS = ("reverb", "noise", "music", "babble")  # the seed's (LAP) kinds; the default


@dataclass(frozen=True)
class NoiseSegment:
    path: str  # absolute
    category: str  # music | speech | noise
    start_sec: float
    duration_sec: float


def _list_file(path: str | os.PathLike, kind: str) -> tuple[Path, Path]:
    """(``<kind>.csv`` written by ``layersv prepare <kind>``, the audio root its paths are relative to)."""
    p = Path(path)
    if p.is_dir():
        p = p / f"{kind}.csv"
    if not p.is_file():
        raise DatasetError(f"{kind.upper()} list not found: {p} (run `layersv prepare {kind} SRC DIR`)")
    meta_p = p.parent / "data.yaml"
    root = Path(yaml.safe_load(meta_p.read_text()).get("audio_root", p.parent)) if meta_p.is_file() else p.parent
    return p, root


def read_musan_list(path: str | os.PathLike) -> list[NoiseSegment]:
    """``musan.csv`` written by ``layersv prepare musan`` (or its folder) → segments with absolute paths."""
    p, root = _list_file(path, "musan")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"path", "category"} <= set(rows[0]):
        raise DatasetError(f"{p}: needs the columns path,category[,start_s,duration_s]")
    return [NoiseSegment(str(root / r["path"]), r["category"], float(r.get("start_s") or 0),
                         float(r.get("duration_s") or 0)) for r in rows]


def read_rir_list(path: str | os.PathLike) -> list[str]:
    p, root = _list_file(path, "rir")
    with open(p, newline="") as f:
        return [str(root / r["path"]) for r in csv.DictReader(f)]


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean + g·noise`` with ``10·log10(P_clean / P(g·noise)) = snr_db`` (both ``(samples,)``)."""
    pn = power(noise)
    if pn <= 0:
        return clean
    g = np.sqrt(power(clean) / (pn * 10 ** (snr_db / 10)))
    return (clean + g * noise).astype(np.float32)


def reverberate(wav: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Energy-normalised RIR, full convolution truncated to ``len(wav)``."""
    rir = rir / max(np.sqrt(power(rir) * len(rir)), 1e-12)
    return fftconvolve(wav, rir)[: len(wav)].astype(np.float32)


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random crop to ``n`` samples, or wrap-pad from a random phase when shorter."""
    if len(x) >= n:
        s = int(rng.integers(0, len(x) - n + 1))
        return x[s:s + n]
    return np.roll(np.resize(x, n), int(rng.integers(0, len(x))))


def resolve_kinds(data_cfg) -> list[str]:
    """``aug_kinds: [auto]`` (the default) → the seed's MUSAN/RIR kinds for the material that was given,
    the corpus-free kinds for the rest: ``reverb`` with a RIR list, else ``sim_reverb`` (when
    pyroomacoustics is installed: ``pip install 'layersv[augment]'``); ``noise``/``music``/``babble``
    with MUSAN, else ``colored_noise`` and ``speaker_babble``. Explicit kinds are returned as they are."""
    kinds = list(data_cfg.aug_kinds)
    if kinds != ["auto"]:
        return kinds
    rev = ["reverb"] if data_cfg.rir_list else (["sim_reverb"] if importlib.util.find_spec("pyroomacoustics") else [])
    return rev + (["noise", "music", "babble"] if data_cfg.musan_list else ["colored_noise", "speaker_babble"])


def check_kinds(kinds) -> None:
    """Raise ``ValueError`` naming the valid kinds when ``kinds`` holds an unknown one."""
    if list(kinds) == ["auto"]:
        return
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown augmentation(s) {bad}; valid: {list(KINDS)}")


class Augmenter:
    """Draws and applies one augmentation per call: ``(samples,)`` float32 → same shape.

    Args:
        musan: noise segments (may be empty); rirs: RIR file paths (may be empty).
        sample_rate: rate of the waveforms (Hz); prob: probability of augmenting at all.
        kinds: subset of ``KINDS`` to draw from (kinds without material are dropped; :attr:`kinds`
            holds the ones in use).
        noise_snr / music_snr / babble_snr: (low, high) dB; babble_count: (min, max) MUSAN talkers.
        rir_bank: a :class:`~layersv.data.rir_bank.RirBank` (``sim_reverb``).
        talkers: ``(audio path, speaker)`` of the training utterances (``speaker_babble``);
            babble_speakers: (min, max) other speakers per babble.
        noise_colors: colours drawn uniformly by ``colored_noise`` (``colored_noise.COLORS``).
        telephone_band: (low, high) Hz; telephone_mulaw: add 8-bit µ-law coding.
    """

    def __init__(self, musan: list[NoiseSegment], rirs: list[str], sample_rate: int, prob: float,
                 kinds: tuple[str, ...] = CORPUS_KINDS, noise_snr: tuple[float, float] = (0.0, 15.0),
                 music_snr: tuple[float, float] = (5.0, 15.0), babble_snr: tuple[float, float] = (13.0, 20.0),
                 babble_count: tuple[int, int] = (4, 7), rir_bank=None, talkers=(),
                 babble_speakers: tuple[int, int] = (3, 7), noise_colors: tuple[str, ...] = ("white", "pink", "brown"),
                 telephone_band: tuple[float, float] = (300.0, 3400.0), telephone_mulaw: bool = True):
        check_kinds(kinds)
        bad = [c for c in noise_colors if c not in COLORS]
        if bad or not noise_colors:
            raise ValueError(f"noise_colors {list(noise_colors)}: choose from {list(COLORS)}")
        for name, (lo, hi) in (("babble_count", babble_count), ("babble_speakers", babble_speakers)):
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be (min, max) with 1 <= min <= max, got {(lo, hi)}")
        self.sample_rate, self.prob = sample_rate, prob
        self.pools = {c: [s for s in musan if s.category == c] for c in ("noise", "music", "speech")}
        self.rirs, self.rir_bank = list(rirs), rir_bank
        self.talkers: dict = {}
        for path, spk in talkers:
            self.talkers.setdefault(spk, []).append(str(path))
        self.talker_speakers = sorted(self.talkers)
        have = {"reverb": bool(self.rirs), "noise": bool(self.pools["noise"]), "music": bool(self.pools["music"]),
                "babble": bool(self.pools["speech"]), "sim_reverb": rir_bank is not None and len(rir_bank) > 0,
                "colored_noise": True, "speaker_babble": len(self.talkers) >= 2, "telephone": True}
        self.kinds = tuple(k for k in kinds if have[k])
        if prob > 0 and not self.kinds:
            raise DatasetError(f"augmentation asked for ({list(kinds)}) but no MUSAN/RIR material was given for them "
                               f"(needs: {', '.join(f'{k}: {KINDS[k]}' for k in kinds)})")
        self.snr = {"noise": noise_snr, "music": music_snr, "speech": babble_snr}
        self.babble_count, self.babble_speakers = babble_count, babble_speakers
        self.noise_colors = tuple(noise_colors)
        self.telephone_band, self.telephone_mulaw = tuple(telephone_band), bool(telephone_mulaw)
        self._apply = {"reverb": self._reverb, "noise": self._musan, "music": self._musan, "babble": self._musan,
                       "sim_reverb": self._sim_reverb, "colored_noise": self._colored,
                       "speaker_babble": self._speaker_babble, "telephone": self._telephone}

    def _noise(self, cat: str, n: int, rng: np.random.Generator) -> np.ndarray:
        seg = self.pools[cat][int(rng.integers(len(self.pools[cat])))]
        x = load_audio(seg.path, self.sample_rate, seg.start_sec, seg.duration_sec or None)
        return fit_length(x, n, rng)

    def _reverb(self, wav, kind, rng, speaker):
        return reverberate(wav, load_audio(self.rirs[int(rng.integers(len(self.rirs)))], self.sample_rate))

    def _sim_reverb(self, wav, kind, rng, speaker):
        rir = self.rir_bank[int(rng.integers(len(self.rir_bank)))]
        return reverberate(wav, resample(rir, self.rir_bank.sample_rate, self.sample_rate))

    def _musan(self, wav, kind, rng, speaker):
        cat = "speech" if kind == "babble" else kind
        count = int(rng.integers(self.babble_count[0], self.babble_count[1] + 1)) if kind == "babble" else 1
        noise = np.zeros_like(wav)
        for _ in range(count):  # each babble talker at its own SNR (as LAP), summed
            lo, hi = self.snr[cat]
            noise += mix_at_snr(wav, self._noise(cat, len(wav), rng), float(rng.uniform(lo, hi))) - wav
        return (wav + noise).astype(np.float32)

    def _colored(self, wav, kind, rng, speaker):
        color = self.noise_colors[int(rng.integers(len(self.noise_colors)))]
        noise = colored_noise(len(wav), color, rng)
        return mix_at_snr(wav, noise, float(rng.uniform(*self.snr["noise"])))

    def _talker(self, spk, n: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``n``-sample segment of a random utterance of ``spk`` (wrap-padded when shorter)."""
        paths = self.talkers[spk]
        path = paths[int(rng.integers(len(paths)))]
        info = audio_info(path)
        need = int(np.ceil(n * info.sample_rate / self.sample_rate))
        start = int(rng.integers(0, info.frames - need + 1)) if info.frames > need else 0
        x = load_audio(path, self.sample_rate, start / info.sample_rate,
                       need / info.sample_rate if info.frames > need else None)
        return fit_length(x, n, rng)

    def _speaker_babble(self, wav, kind, rng, speaker):
        others = [s for s in self.talker_speakers if s != speaker]
        lo, hi = self.babble_speakers
        k = min(int(rng.integers(lo, hi + 1)), len(others))
        babble = np.zeros(len(wav), np.float64)
        for j in rng.choice(len(others), size=k, replace=False):
            x = self._talker(others[int(j)], len(wav), rng).astype(np.float64)
            babble += x / np.sqrt(max(power(x), 1e-12))
        return mix_at_snr(wav, babble, float(rng.uniform(*self.snr["speech"])))

    def _telephone(self, wav, kind, rng, speaker):
        return telephone(wav, self.sample_rate, self.telephone_band, self.telephone_mulaw)

    def apply(self, wav: np.ndarray, kind: str, rng: np.random.Generator, speaker=None) -> np.ndarray:
        """Apply ``kind`` to ``wav`` ``(samples,)``; ``speaker`` is the crop's own speaker (``speaker_babble``
        never uses it).  The output has the input's length."""
        return self._apply[kind](wav, kind, rng, speaker)

    def __call__(self, wav: np.ndarray, rng: np.random.Generator, speaker=None) -> np.ndarray:
        if self.prob <= 0 or rng.random() >= self.prob:
            return wav
        return self.apply(wav, self.kinds[int(rng.integers(len(self.kinds)))], rng, speaker)

    def describe(self) -> dict:
        """The settings of every kind in use (JSON-able): part of an augmented feature cache's key."""
        d: dict = {}
        for k in self.kinds:
            if k in ("noise", "music", "babble"):
                cat = "speech" if k == "babble" else k
                d[k] = {"snr": list(self.snr[cat]), "segments": [[s.path, s.start_sec, s.duration_sec]
                                                                 for s in self.pools[cat]]}
                if k == "babble":
                    d[k]["count"] = list(self.babble_count)
            elif k == "reverb":
                d[k] = {"rirs": self.rirs}
            elif k == "sim_reverb":
                d[k] = {"bank_sha256": self.rir_bank.digest}
            elif k == "colored_noise":
                d[k] = {"snr": list(self.snr["noise"]), "colors": list(self.noise_colors)}
            elif k == "speaker_babble":
                d[k] = {"snr": list(self.snr["speech"]), "speakers": list(self.babble_speakers),
                        "talkers": [[str(s), self.talkers[s]] for s in self.talker_speakers]}
            elif k == "telephone":
                d[k] = {"band": list(self.telephone_band), "mulaw": self.telephone_mulaw}
        return d


def build_augmenter(data_cfg, sample_rate: int, talkers=(), prob: float | None = None, progress: bool = False,
                    log=None) -> Augmenter | None:
    """Factory: an :class:`Augmenter` from ``DataConfig`` fields, or None when the probability is 0.

    ``prob`` overrides ``aug_prob`` (augmented cache copies use 1); ``talkers`` are ``(path, speaker)``
    of the training utterances for ``speaker_babble``.  ``sim_reverb`` opens the dataset's RIR bank,
    building it first when it is missing or was made with other parameters.
    """
    check_kinds(data_cfg.aug_kinds)
    prob = data_cfg.aug_prob if prob is None else prob
    if prob <= 0:
        return None
    kinds = resolve_kinds(data_cfg)
    musan = read_musan_list(data_cfg.musan_list) if data_cfg.musan_list else []
    rirs = read_rir_list(data_cfg.rir_list) if data_cfg.rir_list else []
    bank = None
    if "sim_reverb" in kinds:
        params = BankParams(n_rooms=data_cfg.rir_bank_rooms, seed=data_cfg.rir_bank_seed, sample_rate=sample_rate)
        bank = open_rir_bank(bank_folder(data_cfg.data_dir, data_cfg.rir_bank), params, progress=progress, log=log)
    return Augmenter(musan, rirs, sample_rate, prob, tuple(kinds),
                     tuple(data_cfg.noise_snr), tuple(data_cfg.music_snr), tuple(data_cfg.babble_snr),
                     tuple(int(x) for x in data_cfg.babble_count), rir_bank=bank, talkers=talkers,
                     babble_speakers=tuple(int(x) for x in data_cfg.babble_speakers),
                     noise_colors=tuple(data_cfg.noise_colors), telephone_band=tuple(data_cfg.telephone_band),
                     telephone_mulaw=data_cfg.telephone_mulaw)
