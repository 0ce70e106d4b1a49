"""Name → class lookups that config validation needs: ``{"model": backend class, "head": head class}``.

:func:`layersv.config.from_dict` / :func:`layersv.config.load_config` take these to check a config's
``model.args`` and ``head.args`` against the constructors; an unknown name is a
:class:`~layersv.config.ConfigError`.
"""

from __future__ import annotations

from .backends import get_backend_class
from .config import ConfigError
from .heads import get_head_class


def _checked(lookup):
    def get(name: str):
        try:
            return lookup(name)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    return get


def registries() -> dict:
    """``{"model": name → backend class, "head": name → head class}``, raising ConfigError on unknown names."""
    return {"model": _checked(get_backend_class), "head": _checked(get_head_class)}
