"""VGG-16/19 feature extractors, written here, state-dict compatible with torchvision.

The module keeps torchvision's layout: ``features`` is an ``nn.Sequential`` of
3x3 convolutions (padding 1), ReLUs and 2x2 max-pools, so its keys are
``features.N.weight`` / ``features.N.bias`` with the same N as
``torchvision.models.vgg19().state_dict()``. A torchvision checkpoint (the full
model including ``classifier.*``, or only the ``features.*`` part, optionally
wrapped in ``{"state_dict": ...}``) therefore loads unchanged.

Weights come ONLY from a local file: this project never downloads anything and
never uses a randomly initialised VGG for a loss.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from conrdata.errors import FormatError, UserError
from conrmodel.checkpoint import read_state_dict, torchvision_features_filter

ARCHS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layers(arch: str) -> list[nn.Module]:
    if arch not in ARCHS:
        raise UserError(f"unknown VGG architecture {arch!r} (known: {', '.join(ARCHS)})")
    mods: list[nn.Module] = []
    cin = 3
    for v in ARCHS[arch]:
        if v == "M":
            mods.append(nn.MaxPool2d(2, 2))
        else:
            mods += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    return mods


class VGGFeatures(nn.Module):
    """``features`` of torchvision's VGG, truncated after module index ``last`` (inclusive).

    ``forward(x, taps)`` takes x [B, 3, H, W] already normalised the way the
    weights expect and returns the outputs of the modules whose indices are in
    ``taps`` (e.g. 3 = relu1_2 of VGG-19), in order.
    """

    def __init__(self, arch: str = "vgg19", last: int | None = None):
        super().__init__()
        mods = _layers(arch)
        self.arch = arch
        self.features = nn.Sequential(*mods[: (len(mods) if last is None else last + 1)])

    def forward(self, x: torch.Tensor, taps: list[int] | tuple[int, ...]) -> list[torch.Tensor]:
        wanted = set(taps)
        out = []
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in wanted:
                out.append(x)
            if len(out) == len(wanted):
                break
        return out


def load_vgg(path: str | os.PathLike, arch: str = "vgg19", last: int | None = None) -> VGGFeatures:
    """A frozen, eval-mode :class:`VGGFeatures` with weights from ``path`` (torchvision layout)."""
    model = VGGFeatures(arch, last)
    sd = read_state_dict(path, torchvision_features_filter, f"{arch.upper()} weights file")
    own = model.state_dict()
    picked = {k: v for k, v in sd.items() if k in own}
    missing = sorted(set(own) - set(picked))
    if missing:
        raise FormatError(
            f"not a torchvision {arch} state dict: missing {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}",
            path,
        )
    for k, v in picked.items():
        if v.shape != own[k].shape:
            raise FormatError(
                f"{k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)} for {arch}", path
            )
    model.load_state_dict(picked, strict=True)
    model.eval().requires_grad_(False)
    return model


class VGGLoss(nn.Module):
    """L_vgg: L1 distance of VGG-19 features of alpha-premultiplied RGB, mean per layer, summed.

    Inputs are PREMULTIPLIED RGBA [B, 4, H, W] in [0, 1] (what the renderer outputs):
    features see RGB already weighted by alpha, so colour under transparent pixels does
    not count and the silhouette does. Returns the per-sample loss [B].
    """

    def __init__(self, vgg: VGGFeatures, taps: list[int] | tuple[int, ...] = (3, 8, 17, 26)):
        super().__init__()
        self.vgg = vgg
        self.taps = tuple(int(t) for t in taps)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # the VGG stays frozen in eval mode
        super().train(mode)
        self.vgg.eval()
        return self

    def _prep(self, rgba: torch.Tensor) -> torch.Tensor:
        return (rgba[:, :3] - self.mean) / self.std

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self.vgg(self._prep(pred.float()), self.taps)
        with torch.no_grad():
            ft = self.vgg(self._prep(target.float()), self.taps)
        total = pred.new_zeros(pred.shape[0], dtype=torch.float32)
        for a, b in zip(fp, ft):
            total = total + F.l1_loss(a, b, reduction="none").flatten(1).mean(1)
        return total
