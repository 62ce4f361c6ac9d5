"""Training: the config and its presets (``config``, ``presets/*.yaml``), the losses (``losses``), the
training loop with DDP, checkpoints and exact resume (``loop``) and the run's TensorBoard log (``runlog``).

``loop``'s names are imported on first use: it imports :mod:`conrmodel.evaluate`, which imports
``conrmodel.train.runlog``; importing ``loop`` here would turn that into a start-up cycle.
"""

from __future__ import annotations

import importlib

from conrmodel.train.config import Config, apply_overrides, load_config, preset_names, save_config
from conrmodel.train.losses import consistency_loss, mask_loss, photo_loss, udp_loss
from conrmodel.train.runlog import RunLogger

#: public name -> submodule that defines it, imported on first access (see the module docstring).
_LAZY = {"train": "loop", "build_system": "loop", "CoNRSystem": "loop", "resolve_config": "loop"}

__all__ = [
    "Config",
    "RunLogger",
    "apply_overrides",
    "consistency_loss",
    "load_config",
    "mask_loss",
    "photo_loss",
    "preset_names",
    "save_config",
    "udp_loss",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
