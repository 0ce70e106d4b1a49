"""A frontend wrapped for training: the wrapper changes ``forward`` only, every other attribute
(``sample_rate``, ``frame_lengths``, ``num_layers``, ...) is the wrapped frontend's."""

from __future__ import annotations

import torch.nn as nn


class FrontendWrapper(nn.Module):
    def __init__(self, frontend: nn.Module):
        super().__init__()
        self.inner = frontend

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)
