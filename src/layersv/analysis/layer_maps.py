"""Layer × time maps of frame-level layer attention, and MHFA's key and value layer weights.

Frame-level backends: those holding a :class:`~layersv.backends.layer_attention.LayerAttentionPool`
(UniPool, L-TDNN_ECAPA / L-TDNN_D3Net, LAP with any speaker network, MHFA with ``aggregation: lap``);
after a forward pass each pool keeps ``last_attention (B, heads, L', T)``: averaged over heads it is a
map ``(B, L', T)`` (UniPool drops hidden state 0: its row is 0), one per pool, named by its module
path (``head.lap``, ``mhfa.key_aggregate.pool`` …).  A backend whose ``layer_attention`` returns
``(B, T, L)`` gives the map ``layer_attention``.  SUPERB's weighted sum is static: no map.

:class:`MapCollector` keeps, per map, the ``(L, T_i)`` maps of the first ``n_show`` utterances and
the mean over all utterances in relative time (each map resampled to ``bins`` columns → ``(L, bins)``),
and, for MHFA, the mean ``(L,)`` layer weights of its key and of its value aggregator.
"""

from __future__ import annotations

import numpy as np
import torch

from ..backends.layer_attention import LayerAttentionPool
from ..backends.mhfa import MHFA
from ..utils import atomic_savefig


def frame_maps(backend: torch.nn.Module, att: torch.Tensor, num_layers: int) -> dict[str, torch.Tensor]:
    """Maps ``{name: (B, L, T)}`` after ``att = backend.layer_attention(hidden, lengths)`` (which ran forward)."""
    out = {}
    if att.dim() == 3:
        out["layer_attention"] = att.float().transpose(1, 2)
    for name, m in backend.named_modules():
        if isinstance(m, LayerAttentionPool) and m.last_attention is not None:
            a = m.last_attention.float().mean(1)  # (B, L', T)
            if a.shape[1] < num_layers:  # layers the backend skips (UniPool: hidden state 0) come first
                a = torch.cat([a.new_zeros(a.shape[0], num_layers - a.shape[1], a.shape[2]), a], 1)
            out[name] = a
    return out


def mhfa_weights(backend: torch.nn.Module, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"key": (B, L), "value": (B, L)}`` of the (first) MHFA module after a forward pass; ``{}`` without."""
    for m in backend.modules():
        if isinstance(m, MHFA):
            return {"key": m.key_aggregate.attention_summary(lengths).float(),
                    "value": m.value_aggregate.attention_summary(lengths).float()}
    return {}


def _resample(a: np.ndarray, bins: int) -> np.ndarray:
    """``(L, T)`` → ``(L, bins)`` by linear interpolation over relative time."""
    x = np.linspace(0.0, 1.0, a.shape[1]) if a.shape[1] > 1 else np.zeros(1)
    return np.stack([np.interp(np.linspace(0.0, 1.0, bins), x, row) for row in a])


class MapCollector:
    """Accumulates :func:`frame_maps` and :func:`mhfa_weights` over batches (see the module docstring)."""

    def __init__(self, num_layers: int, n_show: int = 4, bins: int = 50):
        self.num_layers, self.n_show, self.bins = num_layers, n_show, bins
        self.shown: dict[str, list[dict]] = {}
        self.sums: dict[str, np.ndarray] = {}
        self.count = 0
        self.kv: dict[str, torch.Tensor] = {}

    def add(self, backend: torch.nn.Module, att: torch.Tensor, lengths: torch.Tensor, keys: list[str]) -> None:
        lengths = lengths.cpu()
        for name, maps in frame_maps(backend, att, self.num_layers).items():
            shown = self.shown.setdefault(name, [])
            for i, key in enumerate(keys):
                m = maps[i, :, : min(int(lengths[i]), maps.shape[2])].cpu().numpy()  # (L, T_i)
                self.sums[name] = self.sums.get(name, 0.0) + _resample(m, self.bins)
                if len(shown) < self.n_show:
                    shown.append({"key": key, "frames": int(m.shape[1]), "map": m.round(5).tolist()})
        for which, w in mhfa_weights(backend, lengths).items():
            self.kv[which] = self.kv.get(which, 0.0) + w.sum(0).cpu()
        self.count += len(keys)

    def result(self) -> dict:
        """``{"heat_maps": {name: {"utterances": [{key, frames, map (L, T)}], "mean_relative": (L, bins)}},
        "key_weights": (L,), "value_weights": (L,)}`` (the MHFA entries only for MHFA)."""
        out: dict = {}
        if self.shown:
            out["heat_maps"] = {name: {"utterances": u, "bins": self.bins,
                                       "mean_relative": (self.sums[name] / max(self.count, 1)).round(5).tolist()}
                                for name, u in self.shown.items()}
        for which, w in self.kv.items():
            out[f"{which}_weights"] = [float(x) for x in w / max(self.count, 1)]
        return out


def plot_maps(heat_maps: dict, ids: list[int], frame_rate: float, path, title: str) -> None:
    """One row per map, one column per shown utterance (time in seconds) plus the relative-time mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + max(len(m["utterances"]) for m in heat_maps.values())
    fig, axes = plt.subplots(len(heat_maps), cols, figsize=(3.2 * cols, 2.6 * len(heat_maps)), squeeze=False)
    for r, (name, m) in enumerate(heat_maps.items()):
        panels = [(u["key"], np.asarray(u["map"]), u["frames"] / frame_rate, "time (s)") for u in m["utterances"]]
        panels.append(("mean of all", np.asarray(m["mean_relative"]), 1.0, "relative time"))
        for c, ax in enumerate(axes[r]):  # utterances from the left, the mean in the last column
            panel = panels[c] if c < len(panels) - 1 else (panels[-1] if c == cols - 1 else None)
            if panel is None:
                ax.axis("off")
                continue
            label, a, width, xlabel = panel
            im = ax.imshow(a, aspect="auto", origin="lower", interpolation="nearest",
                           extent=(0, width, -0.5, a.shape[0] - 0.5))
            ax.set_yticks(range(len(ids)), [str(i) for i in ids], fontsize=6)
            ax.set_xlabel(xlabel, fontsize=7)
            ax.set_title(f"{name}\n{label}"[-60:], fontsize=7)
            fig.colorbar(im, ax=ax)
        axes[r][0].set_ylabel("hidden state")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
