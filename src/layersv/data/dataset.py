"""Training crops and evaluation batches.

Training is a deterministic *stream*: item ``k`` of the stream is utterance
``perm_e[k mod N]`` of the epoch-``e = k // N`` permutation (seeded by ``seed + e``), cropped at an
offset drawn from a generator seeded by ``(seed, k)``.  Step ``s`` of a run reads items
``s·B … (s+1)·B − 1``, so a resumed run sees exactly the batches an uninterrupted one would,
whatever the number of loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .audio import AudioInfo, load_audio, resample


@dataclass
class Batch:
    wav: torch.Tensor  # (B, S) float32, zero-padded
    lengths: torch.Tensor  # (B,) valid samples
    labels: torch.Tensor  # (B,) speaker index (-1 at evaluation)
    keys: list  # utterance keys (relative paths)


def collate(items: list[tuple[np.ndarray, int, str]]) -> Batch:
    n = max(len(w) for w, _, _ in items)
    wav = torch.zeros(len(items), n)
    for i, (w, _, _) in enumerate(items):
        wav[i, : len(w)] = torch.from_numpy(w)
    lengths = torch.tensor([len(w) for w, _, _ in items], dtype=torch.long)
    labels = torch.tensor([lab for _, lab, _ in items], dtype=torch.long)
    return Batch(wav, lengths, labels, [k for _, _, k in items])


def augment_rng(seed: int, k: int) -> np.random.Generator:
    """The generator of stream item ``k``'s augmentation: its first ``random()`` decides whether the
    item is augmented (``< aug_prob``), its next draw which kind (waveforms) or which cached copy."""
    return np.random.default_rng([seed, 2_000_003, k])


class TrainCrops(Dataset):
    """Random fixed-length crops; shorter clips are wrap-padded (repeated) to the crop length.

    Args:
        files: ``(absolute path, relative key)`` per utterance.
        labels: speaker index per utterance.
        infos: header info per relative key (frames, rate), to crop without decoding everything.
        sample_rate: model rate (Hz); crop_sec: crop length (seconds); seed: stream seed.
        augment: optional :class:`~layersv.data.augment.Augmenter` applied to each crop.
        speed_perturb / speed_prob: LAP speed perturbation: with probability ``speed_prob`` a factor
            ``f`` drawn uniformly from ``speed_perturb`` resamples the audio from ``f·rate`` to ``rate``
            (tempo and pitch change) and the label becomes ``label + num_speakers·(i + 1)`` — a new class.
    Indexing takes the *stream* index ``k`` (any non-negative int).
    """

    def __init__(self, files: list[tuple[str, str]], labels: list[int], infos: dict[str, AudioInfo],
                 sample_rate: int, crop_sec: float, seed: int, fix_to_maxlen: bool = True, augment=None,
                 speed_perturb: tuple[float, ...] = (), speed_prob: float = 0.0):
        self.files, self.labels, self.infos = files, labels, infos
        self.sample_rate, self.crop_sec, self.seed = sample_rate, crop_sec, seed
        self.fix_to_maxlen = fix_to_maxlen
        self.augment, self.speed_perturb, self.speed_prob = augment, tuple(speed_perturb), speed_prob
        self.num_speakers = max(labels) + 1 if labels else 0
        self._perm_cache: dict[int, np.ndarray] = {}

    @property
    def num_classes(self) -> int:
        """Speakers × (1 + number of speed factors)."""
        return self.num_speakers * (1 + len(self.speed_perturb))

    def __len__(self) -> int:
        return len(self.files)

    def utterance_of(self, k: int) -> int:
        n = len(self.files)
        epoch, pos = divmod(k, n)
        if epoch not in self._perm_cache:
            self._perm_cache = {epoch: np.random.default_rng([self.seed, epoch]).permutation(n)}
        return int(self._perm_cache[epoch][pos])

    def __getitem__(self, k: int) -> tuple[np.ndarray, int, str]:
        u = self.utterance_of(k)
        path, key = self.files[u]
        info = self.infos[key]
        rng = np.random.default_rng([self.seed, 1_000_003, k])
        label, factor = self.labels[u], 1.0
        if self.speed_perturb and rng.random() < self.speed_prob:
            i = int(rng.integers(len(self.speed_perturb)))
            factor, label = self.speed_perturb[i], label + self.num_speakers * (i + 1)
        crop_file = int(round(self.crop_sec * factor * info.sample_rate))
        if info.frames > crop_file:
            start = int(rng.integers(0, info.frames - crop_file + 1))
            wav = load_audio(path, self.sample_rate, start / info.sample_rate, crop_file / info.sample_rate)
        else:
            wav = load_audio(path, self.sample_rate)
        if factor != 1.0:  # read at rate·factor, play at rate: tempo and pitch × factor
            wav = resample(wav, int(round(self.sample_rate * factor)), self.sample_rate)
        n = int(round(self.crop_sec * self.sample_rate))
        if len(wav) > n:
            wav = wav[:n]
        elif len(wav) < n and self.fix_to_maxlen:
            wav = np.pad(wav, (0, n - len(wav)), mode="wrap")
        if self.augment is not None:
            wav = self.augment(wav, augment_rng(self.seed, k), speaker=self.labels[u])
        return wav, label, key

    @staticmethod
    def collate(items: list[tuple[np.ndarray, int, str]]) -> Batch:
        """The batches of this dataset: :func:`collate` (padded waveforms)."""
        return collate(items)


class Utterances(Dataset):
    """Full utterances for embedding extraction (optionally the first ``max_sec`` seconds)."""

    def __init__(self, files: list[tuple[str, str]], sample_rate: int, max_sec: float = 0.0):
        self.files, self.sample_rate, self.max_sec = files, sample_rate, max_sec

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, str]:
        path, key = self.files[i]
        wav = load_audio(path, self.sample_rate, 0.0, self.max_sec or None)
        return wav, -1, key


def length_buckets(durations: list[float], budget_sec: float, max_items: int = 256) -> list[list[int]]:
    """Group indices into batches of similar length whose *padded* size stays within ``budget_sec``.

    Sorting by duration keeps padding small; each batch's cost is ``len(batch) · max duration``.
    """
    order = np.argsort(np.asarray(durations), kind="stable")[::-1]
    batches, cur, cur_max = [], [], 0.0
    for i in order:
        d = durations[i]
        new_max = max(cur_max, d)
        if cur and (new_max * (len(cur) + 1) > budget_sec or len(cur) >= max_items):
            batches.append(cur)
            cur, new_max = [], d
        cur.append(int(i))
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


class ListSampler(Sampler):
    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
