"""A seeded bank of *simulated* room impulse responses (pyroomacoustics), built once per dataset folder.

Reverberation augmentation without a RIR corpus: ``n_rooms`` shoebox rooms, room ``i`` drawn from a
generator seeded by ``(seed, i)`` (so a bigger bank starts with the rooms of a smaller one):
length and width ~ U[room_xy] m, height ~ U[room_z] m, RT60 ~ U[rt60] s (wall absorption from
Sabine's formula, image-source order capped at ``max_order``), source and microphone at least
``wall_gap`` m from every wall, 1–2 m high, at least ``min_distance`` m apart.  Each RIR starts
1 ms before its direct-path peak and is cut to ``max_len_sec`` seconds.

Layout: ``<data_dir>/rir_bank/rirs.npz`` (``data``: all RIRs concatenated, float32; ``offsets``
``(n_rooms + 1,)``) and ``manifest.json`` (format, the :class:`BankParams`, the sha256 of the npz,
and every room's geometry, RT60 and length).  Both are written atomically, the npz first; the
manifest is the commit mark.  :func:`open_rir_bank` reuses a bank whose parameters and checksum match
and (re)builds it otherwise.  Build it explicitly with ``layersv prepare rir-bank DATA_DIR``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..utils import atomic_write_bytes, atomic_write_text

FORMAT = "layersv-rir-bank-1"
BANK_DIRNAME = "rir_bank"


class MissingDependency(ImportError, ValueError):
    """An optional dependency (an extra of the package) is not installed."""


def _pyroomacoustics():
    try:
        import pyroomacoustics
    except ImportError:
        raise MissingDependency("simulated room impulse responses (augmentation kind sim_reverb, "
                                "`layersv prepare rir-bank`) need pyroomacoustics: "
                                "pip install 'layersv[augment]'") from None
    return pyroomacoustics


@dataclass(frozen=True)
class BankParams:
    """Everything that determines the bank (stored in its manifest; a change rebuilds it)."""

    n_rooms: int = 200
    seed: int = 0
    sample_rate: int = 16000  # Hz
    room_xy: tuple = (3.0, 10.0)  # m, length and width ~ U[low, high]
    room_z: tuple = (2.4, 4.0)  # m, height
    rt60: tuple = (0.2, 0.8)  # s, target reverberation time
    max_order: int = 30  # image-source reflection order cap
    max_len_sec: float = 1.0  # s, RIR length cap
    wall_gap: float = 0.5  # m, source / microphone distance to walls
    min_distance: float = 0.5  # m, source–microphone distance

    def __post_init__(self):
        if self.n_rooms < 1:
            raise ValueError(f"rir bank: n_rooms must be >= 1, got {self.n_rooms}")
        for name in ("room_xy", "room_z", "rt60"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"rir bank: {name} must be 0 < low <= high, got {(lo, hi)}")
        if self.room_xy[0] <= 2 * self.wall_gap + self.min_distance:
            raise ValueError("rir bank: rooms too small for wall_gap and min_distance")

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def simulate_room(p: BankParams, i: int) -> tuple[np.ndarray, dict]:
    """Room ``i`` of the bank: ``(rir (samples,) float32, description)``."""
    pra = _pyroomacoustics()
    rng = np.random.default_rng([p.seed, i])
    dims = [float(rng.uniform(*p.room_xy)), float(rng.uniform(*p.room_xy)), float(rng.uniform(*p.room_z))]
    rt60 = float(rng.uniform(*p.rt60))

    def spot():
        return [float(rng.uniform(p.wall_gap, d - p.wall_gap)) for d in dims[:2]] + [float(rng.uniform(1.0, 2.0))]

    src, mic = spot(), spot()
    while np.linalg.norm(np.subtract(src, mic)) < p.min_distance:
        mic = spot()
    try:
        e_abs, order = pra.inverse_sabine(rt60, dims)
    except ValueError:  # RT60 too long for this room: fully reflective walls
        e_abs, order = 0.01, p.max_order
    order = int(min(order, p.max_order))
    room = pra.ShoeBox(dims, fs=p.sample_rate, materials=pra.Material(float(e_abs)), max_order=order)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    start = max(0, int(np.argmax(np.abs(rir))) - p.sample_rate // 1000)
    rir = rir[start : start + int(round(p.max_len_sec * p.sample_rate))].astype(np.float32)
    info = {"room": i, "dims_m": [round(d, 4) for d in dims], "rt60_target_s": round(rt60, 4),
            "absorption": round(float(e_abs), 5), "max_order": order, "source_m": [round(x, 4) for x in src],
            "mic_m": [round(x, 4) for x in mic], "samples": int(len(rir))}
    return rir, info


class RirBank:
    """The loaded bank: ``len(bank)`` rooms, ``bank[i]`` → ``(samples,)`` float32 RIR at ``sample_rate``."""

    def __init__(self, path: Path, manifest: dict, data: np.ndarray, offsets: np.ndarray):
        self.path, self.manifest = Path(path), manifest
        self.data, self.offsets = data, offsets
        self.sample_rate = int(manifest["params"]["sample_rate"])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    @property
    def digest(self) -> str:
        return self.manifest["sha256"]


def build_rir_bank(folder: str | os.PathLike, params: BankParams, progress: bool = False) -> RirBank:
    """Simulate every room of ``params`` and write the bank into ``folder`` (atomically)."""
    folder = Path(folder)
    rirs, rooms = [], []
    for i in tqdm(range(params.n_rooms), desc="rir bank", disable=not progress, unit="room"):
        r, info = simulate_room(params, i)
        rirs.append(r)
        rooms.append(info)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rirs])]).astype(np.int64)
    data = np.concatenate(rirs).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, data=data, offsets=offsets)
    blob = buf.getvalue()
    manifest = {"format": FORMAT, "params": params.as_dict(), "sha256": hashlib.sha256(blob).hexdigest(),
                "rooms": rooms}
    atomic_write_bytes(folder / "rirs.npz", blob)
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1))
    return RirBank(folder, manifest, data, offsets)


def _load(folder: Path, params: BankParams) -> RirBank | None:
    """The stored bank when it is complete, intact and made with ``params``; else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        blob = (folder / "rirs.npz").read_bytes()
    except (OSError, ValueError):
        return None
    if manifest.get("format") != FORMAT or manifest.get("params") != params.as_dict():
        return None
    if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
        return None
    buf = io.BytesIO(blob)
    with np.load(buf, allow_pickle=False) as z:
        return RirBank(folder, manifest, z["data"], z["offsets"])


def bank_folder(data_dir: str | os.PathLike, rir_bank: str = "") -> Path:
    """``rir_bank`` when given, else ``<data_dir>/rir_bank``."""
    if rir_bank:
        return Path(rir_bank)
    if not data_dir:
        raise ValueError("sim_reverb needs a dataset folder (data_dir) or an explicit rir_bank folder")
    return Path(data_dir) / BANK_DIRNAME


def open_rir_bank(folder: str | os.PathLike, params: BankParams, build: bool = True, progress: bool = False,
                  log=None) -> RirBank:
    """Reuse the bank in ``folder`` if it was made with ``params``; otherwise build it (``build``) or raise."""
    folder = Path(folder)
    bank = _load(folder, params)
    if bank is not None:
        return bank
    if not build:
        raise FileNotFoundError(f"no RIR bank with these parameters in {folder} "
                                f"(run `layersv prepare rir-bank DATA_DIR --n_rooms {params.n_rooms} "
                                f"--seed {params.seed}`)")
    if log is not None:
        log.info(f"building the simulated RIR bank {folder} ({params.n_rooms} rooms, seed {params.seed})")
    return build_rir_bank(folder, params, progress)
