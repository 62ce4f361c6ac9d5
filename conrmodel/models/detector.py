"""The UDP detector: RGB image -> Ultra-Dense Pose (landmark xyz + body mask), a ResNet U-Net.

Official layout (``udpparsernet.pth``): a ResNet-50 encoder with instance norm and a strided-conv
stem instead of max-pool, a decoder of widths 512-384-256-128-32 and 4 output channels; its state dict
is this module's state dict (``backbone.*``, ``upsample_blocks.*``, ``final_conv.*``).

Inputs are RGB in [0, 1], ideally premultiplied by alpha (a cut-out character on black, which is how the
official release fed its images). Internally the image is normalised as ``(x - 0.6) / 0.297``, the
official constants.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from conrmodel.models.backbones import ResNetEncoder, ResUNet

INPUT_MEAN = 0.6
INPUT_STD = 0.297
_EPS = 1e-4


def normalise_input(x: torch.Tensor) -> torch.Tensor:
    """The official input normalisation for both ResNet encoders."""
    return (x - INPUT_MEAN) / INPUT_STD


class UDPDetector(ResUNet):
    """``det(rgb [B,3,H,W] in [0,1]) -> [B,4,H,W]``: channels 0-2 landmarks in [0, 1], channel 3 mask logit.

    Args:
        backbone: the encoder (3 input channels).
        decoder_filters: five decoder widths.
        head: ``"sigmoid"`` (ours: landmarks through a sigmoid, mask raw logit, trainable everywhere) or
            ``"official"`` (the official release clamps all four outputs to [0, 1]; the mask value m is
            returned as the logit log(m / (1 - m)), clamped away from 0 and 1, so that sigmoid(channel 3)
            is the official mask).
        norm: decoder norm (``"instance"`` as in the official files).

    ``features(rgb)`` returns the encoder's skip list (what the renderer uses as reference features).
    H and W must be multiples of 32.
    """

    def __init__(self, backbone: ResNetEncoder, decoder_filters: Sequence[int] = (512, 384, 256, 128, 32),
                 head: str = "sigmoid", norm: str = "instance"):
        if head not in ("sigmoid", "official"):
            raise ValueError(f"unknown detector head {head!r}")
        super().__init__(backbone, classes=4, decoder_filters=decoder_filters, norm=norm, decoder=True)
        self.head = head

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        raw, _ = super().forward(normalise_input(rgb))
        return self.finish(raw)

    def finish(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw network output -> (landmarks in [0, 1], mask logit)."""
        if self.head == "official":
            xyz = raw[:, :3].clamp(0.0, 1.0)
            m = raw[:, 3:4].clamp(_EPS, 1.0 - _EPS)
            return torch.cat([xyz, torch.log(m) - torch.log1p(-m)], dim=1)
        return torch.cat([torch.sigmoid(raw[:, :3]), raw[:, 3:4]], dim=1)

    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """Encoder skip features of ``rgb`` (no decoder pass)."""
        return self.backbone.features(normalise_input(rgb))

    def predict_with_features(self, rgb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Both the UDP prediction and the encoder features from one encoder pass."""
        raw, feats = super().forward(normalise_input(rgb))
        return self.finish(raw), feats


def udp_from_prediction(pred: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Detector output -> a UDP in the project's encoding: xyz * occupancy, occupancy in {0, 1}.

    ``pred`` [B,4,H,W] (landmarks, mask logit) -> [B,4,H,W]; background pixels are exactly 0.
    """
    occ = (torch.sigmoid(pred[:, 3:4]) > threshold).to(pred.dtype)
    return torch.cat([pred[:, :3] * occ, occ], dim=1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
