"""The one path by which weights enter and leave the project: find, read, save, filter.

Every file of weights is read here, with ``torch.load(weights_only=True)`` (no pickled code runs), and
every problem with one is a :class:`~conrdata.errors.UserError` (missing) or
:class:`~conrdata.errors.FormatError` (unreadable, wrong content) whose message names the file::

    <path>: cannot read <what> (<first line of the reason>)

Three kinds of file come in:

* our training checkpoints (``conrmodel train``): a dict with ``format_version``, ``detector`` and
  ``renderer`` state dicts, their build configs and the run's state (see :mod:`conrmodel.train.loop`);
  :func:`find_checkpoint` picks one from a run folder, :func:`load_checkpoint` reads and checks it;
* the official CoNR release: a folder of four plain state dicts (:data:`OFFICIAL_FILES`);
* foreign state dicts for parts of a network: torchvision backbones (ResNet, VGG) and the LPIPS linear
  layers, read with :func:`read_state_dict` and a *filter* (a function state dict -> state dict, as in
  timm) that keeps and renames the entries our modules use.

A ``module.`` prefix (left by DistributedDataParallel) is stripped from every state dict read here, and a
state dict wrapped as ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conrdata.errors import FormatError, UserError

FORMAT_VERSION = 1  # of our training checkpoints; a newer one is refused
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAMES = ("latest.pt", "last.pt", "final.pt")  # preferred, in this order, over the newest *.pt
OFFICIAL_PARTS = ("udpparsernet", "target_pose_encoder", "shader", "rgbadecodernet")
OFFICIAL_FILES = tuple(f"{part}.pth" for part in OFFICIAL_PARTS)

StateDict = dict[str, torch.Tensor]
Filter = Callable[[StateDict], StateDict]


# ---------------------------------------------------------------------------------------------- finding


def has_official_files(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds at least one of the four official file names."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / name).is_file() for name in OFFICIAL_FILES)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file: ``path`` itself, else ``latest.pt``/``last.pt``/``final.pt`` or else the newest
    ``*.pt`` in ``path/checkpoints`` or ``path``. Raises :class:`UserError` when there is none."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise UserError("weights not found", path)
    for folder in (path / CHECKPOINT_DIR, path):
        if not folder.is_dir():
            continue
        for name in CHECKPOINT_NAMES:
            if (folder / name).is_file():
                return folder / name
        found = sorted(folder.glob("*.pt"), key=lambda p: (p.stat().st_mtime, p.name))
        if found:
            return found[-1]
    raise UserError(
        "no checkpoint found (expected checkpoints/latest.pt, last.pt, final.pt or a *.pt file) and not "
        f"the official release ({', '.join(OFFICIAL_FILES)})",
        path,
    )


# ---------------------------------------------------------------------------------------------- reading


def read_object(path: str | os.PathLike, what: str = "weights file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with the project's one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt, foreign or unsafe files
        lines = str(err).strip().splitlines()
        reason = lines[0][:160] if lines else type(err).__name__
        raise FormatError(f"cannot read {what} ({type(err).__name__}: {reason})", path) from err


def strip_module_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Names without the ``module.`` prefix DistributedDataParallel adds."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def as_state_dict(obj: Any, path: str | os.PathLike, what: str = "weights file") -> StateDict:
    """A loaded object -> a tensor state dict: unwraps ``state_dict``/``model``, strips ``module.``."""
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise FormatError(f"{what} holds no state dict (a mapping of parameter names to tensors)", path)
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise FormatError(f"{what}: entry {name!r} is not a tensor", path)
    return strip_module_prefix(obj)


def read_state_dict(path: str | os.PathLike, filter: Filter | None = None,
                    what: str = "weights file") -> StateDict:
    """A tensor state dict from ``path`` (see :func:`as_state_dict`), passed through ``filter``."""
    state = as_state_dict(read_object(path, what), path, what)
    if filter is not None:
        try:
            state = filter(state)
        except KeyError as err:
            raise FormatError(f"{what} lacks entry {err.args[0]!r}", path) from None
    return state


def load_checkpoint(path: str | os.PathLike) -> dict:
    """One of our training checkpoints (a file; see :func:`find_checkpoint` for folders), checked.

    Its ``detector`` and ``renderer`` state dicts come back without a ``module.`` prefix.
    """
    path = Path(path)
    ckpt = read_object(path, "checkpoint")
    if not isinstance(ckpt, dict) or "detector" not in ckpt or "renderer" not in ckpt:
        keys = ", ".join(sorted(map(str, ckpt))[:8]) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise FormatError(f"not a CoNR training checkpoint: no 'detector' and 'renderer' (has {keys})", path)
    version = ckpt.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FormatError(f"checkpoint format {version!r} is newer than this code's {FORMAT_VERSION}", path)
    for part in ("detector", "renderer"):
        ckpt[part] = as_state_dict(ckpt[part], path, f"checkpoint's {part}")
    return ckpt


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """``module.load_state_dict(state, strict=True)`` with a one-line error naming ``path``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        bits = []
        if missing:
            bits.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            bits.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            bits.append(f"{len(shapes)} with other shapes (e.g. {k}: file {tuple(state[k].shape)}, "
                        f"network {tuple(own[k].shape)})")
        raise FormatError("does not match the network: " + "; ".join(bits), path)
    module.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------- saving


def save(obj: Any, path: str | os.PathLike, aliases: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``torch.save`` to a temporary name, then rename (a killed run never leaves half a file); each of
    ``aliases`` (e.g. ``latest.pt``) becomes the same file, by a hard link where possible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    for alias in map(Path, aliases):
        tmp = alias.with_name(alias.name + ".tmp")
        try:
            tmp.unlink(missing_ok=True)
            os.link(path, tmp)
            os.replace(tmp, alias)
        except OSError:  # no hard links on this file system: a second copy
            save(obj, alias)
    return path


# ---------------------------------------------------------------------------------------------- filters


def official_filter(state: StateDict) -> StateDict:
    """The official release's files are plain state dicts in our names (after the ``module.`` strip)."""
    return state


def torchvision_features_filter(state: StateDict) -> StateDict:
    """A torchvision VGG (full model or ``features`` only) -> its ``features.*`` entries."""
    return {k: v for k, v in state.items() if k.startswith("features.")}


def torchvision_resnet_filter(state: StateDict) -> StateDict:
    """A torchvision ResNet -> its convolutional trunk (the ``fc`` classifier dropped)."""
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def lpips_linear_filter(state: StateDict) -> StateDict:
    """LPIPS ``vgg.pth`` (``lin{i}.model.1.weight``, or ``lin{i}.weight``) -> ``{"lin{i}": weight}``."""
    out = {}
    for k, v in state.items():
        m = re.fullmatch(r"(lin\d+)(\.model\.1)?\.weight", k)
        if m:
            out[m.group(1)] = v
    return out
