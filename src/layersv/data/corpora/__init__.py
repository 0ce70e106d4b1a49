"""Corpus preparers: ``PREPARERS[name](src, data_dir, ...)`` writes a dataset folder (design.md "Data").

lhotse serves the downloads (``DOWNLOADERS``); its ``prepare_*`` recipes are not used for the
listings because they do not cover what SV needs (see each module): VCTK 0.80 ``wav48`` layout and
the prompt/speaker filtering, SPEAKERS.TXT gender metadata, offline VoxCeleb trial lists (lhotse
downloads ``voxceleb1_test_v2.txt`` from the network), MUSAN chunking.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..dataset_folder import DatasetError
from .common import run_download
from .folder import prepare_folder
from .librispeech import prepare_librispeech
from .noise import prepare_musan, prepare_rir
from .vctk import prepare_vctk
from .voxceleb import prepare_voxceleb

PREPARERS = {"vctk": prepare_vctk, "librispeech": prepare_librispeech, "voxceleb": prepare_voxceleb,
             "musan": prepare_musan, "rir": prepare_rir, "folder": prepare_folder}


def _lhotse(name: str):
    return importlib.import_module(f"lhotse.recipes.{name}")


DOWNLOADERS = {
    "vctk": lambda t: run_download(_lhotse("vctk").download_vctk, t, "VCTK"),
    "librispeech": lambda t: run_download(_lhotse("librispeech").download_librispeech, t, "LibriSpeech",
                                          dataset_parts="librispeech"),
    "musan": lambda t: run_download(_lhotse("musan").download_musan, t, "MUSAN"),
    "rir": lambda t: run_download(_lhotse("rir_noise").download_rir_noise, t, "RIRS_NOISES"),
}


def download(corpus: str, target: str | Path) -> Path:
    """Download ``corpus`` into ``target`` with lhotse (needs network)."""
    if corpus == "voxceleb":
        raise DatasetError("VoxCeleb needs a manual step: request access at "
                           "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/ , download and extract the parts, "
                           "then run `layersv prepare voxceleb SRC DATA_DIR --trials DIR`")
    if corpus not in DOWNLOADERS:
        raise DatasetError(f"no downloader for {corpus!r}; valid: {sorted(DOWNLOADERS) + ['voxceleb']}")
    Path(target).mkdir(parents=True, exist_ok=True)
    return DOWNLOADERS[corpus](Path(target))


__all__ = ["PREPARERS", "DOWNLOADERS", "download", "prepare_vctk", "prepare_librispeech", "prepare_voxceleb",
           "prepare_musan", "prepare_rir", "prepare_folder"]
