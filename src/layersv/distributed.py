"""Multi-process training with ``torchrun``: process group, rank helpers, collective gathers.

``layersv train ...`` works unchanged under ``torchrun --nproc_per_node N``: torchrun sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` (its rendezvous picks
the port — nothing is hard-coded), ranks exchange objects through collectives (no temporary
files, no sleeps, unlike the seeds), and only rank 0 writes the run folder.
``layersv eval`` and ``layersv cache`` run under torchrun too (:func:`on_ranks`, :func:`all_or_raise`;
:mod:`layersv.embed.ranks`, :mod:`layersv.frontends.cache_ranks`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device: str) -> str:
    """Join the process group when launched by torchrun; returns the device this rank uses."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return "cpu"


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


# ---------------------------------------------------------------- eval and cache under torchrun


@contextmanager
def on_ranks(device: str) -> Iterator[tuple[str, bool]]:
    """``with on_ranks(device) as (device, is_main):`` join the process group when launched by torchrun
    (a no-op otherwise) and leave it at the end, without a barrier: the body's last step is a
    collective, or an error on one rank that the others learn of through :func:`all_or_raise`."""
    started = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (dist.is_available() and dist.is_initialized())
    device = setup(device)
    try:
        yield device, is_main()
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def all_or_raise(fn: Callable[[], Any]) -> list[Any]:
    """``fn()`` on every rank → every rank's result in rank order, on every rank; an error on any rank
    is raised on all of them (as RuntimeError naming the rank), so none waits forever in a collective."""
    try:
        out = (fn(), None)
    except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
        if world_size() == 1:
            raise
        out = (None, f"{type(e).__name__}: {e}")
    got = gather_objects(out)
    bad = [f"rank {r}: {err}" for r, (_, err) in enumerate(got) if err]
    if bad:
        raise RuntimeError("; ".join(bad))
    return [res for res, _ in got]
