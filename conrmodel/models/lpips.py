"""LPIPS (Zhang et al. 2018, VGG variant) computed with locally supplied weights.

Two files, both read through :mod:`conrmodel.checkpoint` (``torch.load(weights_only=True)``):

* the backbone: a torchvision VGG-16 state dict (keys ``features.N.weight`` /
  ``features.N.bias``; ``classifier.*`` keys are ignored), e.g. the file
  ``torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict()`` saves;
* the linear layers: the ``vgg.pth`` of the reference implementation
  (``lpips`` package, ``lpips/weights/v0.1/vgg.pth``): five tensors
  ``lin{0..4}.model.1.weight`` of shapes [1, C, 1, 1] with C = 64, 128, 256,
  512, 512 (``lin{i}.weight`` without ``model.1`` is accepted too).

Distance for RGB images in [0, 1]: both are mapped to [-1, 1], shifted and
scaled per channel (the reference ScalingLayer), passed through VGG-16; the
activations after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 are
unit-normalised along channels, their squared difference is weighted per
channel by the linear layer, averaged over space and summed over the five
layers. Identical images give 0.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from conrdata.errors import FormatError
from conrmodel.checkpoint import lpips_linear_filter, read_state_dict
from conrmodel.models.vgg import load_vgg

TAPS = (3, 8, 15, 22, 29)
CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """``LPIPS(backbone_path, linear_path)(a, b)`` -> distance per image [B];
    a, b: RGB [B, 3, H, W] in [0, 1]."""

    def __init__(self, backbone_path: str | os.PathLike, linear_path: str | os.PathLike):
        super().__init__()
        self.vgg = load_vgg(backbone_path, "vgg16", last=TAPS[-1])
        sd = read_state_dict(linear_path, lpips_linear_filter, "LPIPS linear-layer weights file")
        weights = []
        for i, c in enumerate(CHANNELS):
            w = sd.get(f"lin{i}")
            if w is None:
                raise FormatError(
                    f"missing lin{i}.model.1.weight (an LPIPS vgg.pth is expected)", linear_path
                )
            if tuple(w.shape) != (1, c, 1, 1):
                raise FormatError(
                    f"lin{i} weight has shape {tuple(w.shape)}, expected (1, {c}, 1, 1)", linear_path
                )
            weights.append(w.float())
        self.lin = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @staticmethod
    def _unit(x: torch.Tensor) -> torch.Tensor:
        return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = ((a.float() * 2 - 1) - self.shift) / self.scale
        b = ((b.float() * 2 - 1) - self.shift) / self.scale
        fa, fb = self.vgg(a, TAPS), self.vgg(b, TAPS)
        total = a.new_zeros(a.shape[0])
        for x, y, w in zip(fa, fb, self.lin):
            d = (self._unit(x) - self._unit(y)).pow(2)
            total = total + (d * w).sum(1).mean((1, 2))
        return total
