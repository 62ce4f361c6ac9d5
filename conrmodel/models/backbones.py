"""ResNet encoders and the U-Net built on them (our own code; no torchvision needed).

Layout. An encoder is an ``nn.Sequential`` whose children are named ``"0"`` ... ``"7"``
exactly as in the official CoNR networks (which wrapped torchvision's ResNet as
``nn.Sequential(*children)``):

    0 stem conv 7x7/2   1 norm   2 ReLU   3 max-pool 3x3/2 or strided conv 3x3/2
    4 layer1 (/4)       5 layer2 (/8)      6 layer3 (/16)    7 layer4 (/32)

Residual blocks keep torchvision's attribute names (``conv1``, ``bn1``, ...,
``downsample.0/1``), so a torchvision-layout state dict loads through
:func:`load_torchvision_resnet` after a fixed renaming. With ``norm="instance"``
every norm layer is an :class:`InstanceNorm` wrapper whose parameters are
``<name>.norm.weight/bias`` (the official files' layout) and which has no running
statistics.

All feature maps are ``[B, C, H / s, W / s]`` float tensors; H and W must be
multiples of 32 for the encoders (every stride-2 stage halves them exactly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------- norms


class InstanceNorm(nn.Module):
    """Affine instance norm kept under ``.norm`` (official name layout ``bn1.norm.weight``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, eps=1e-5, affine=True, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def make_norm(kind: str, channels: int) -> nn.Module:
    """``"instance"`` (official CoNR), ``"batch"`` (torchvision) or ``"none"``."""
    if kind == "instance":
        return InstanceNorm(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected 'instance', 'batch' or 'none'")


# ---------------------------------------------------------------------------------------------- blocks


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _shortcut(cin: int, cout: int, stride: int, norm: str) -> nn.Module | None:
    """The projection (1x1 conv + norm, ``downsample.0/1``) of a block whose shape changes, else None."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv1x1(cin, cout, stride), make_norm(norm, cout))


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3x3 convs, identity or 1x1 projection shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, norm: str):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = make_norm(norm, width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, cout)
        self.bn2 = make_norm(norm, cout)
        self.downsample = _shortcut(cin, cout, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """ResNet-50 block (v1.5: the stride sits on the 3x3 conv), 4x channel expansion."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, norm: str):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = make_norm(norm, width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = make_norm(norm, width)
        self.conv3 = _conv1x1(width, cout)
        self.bn3 = make_norm(norm, cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


# ---------------------------------------------------------------------------------------------- encoder

RESNET_DEPTHS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet_tiny": (BasicBlock, (1, 1, 1, 1)),
}


class ResNetEncoder(nn.Sequential):
    """A ResNet without its classifier head, as ``nn.Sequential`` children ``0..7``.

    Args:
        arch: a key of :data:`RESNET_DEPTHS` (``resnet18``, ``resnet34``, ``resnet50``, ``resnet_tiny``).
        in_channels: input channels (3 for RGB, 4 for a UDP or RGBA: the "4-channel stem").
        width: channels of the stem and of layer1's blocks (64 for the standard ResNets).
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
        pool: ``"max"`` (torchvision) or ``"conv"`` (a strided 3x3 conv instead of max-pool, as in the
            official UDP detector).

    ``features(x)`` returns the five U-Net skip maps, coarse to fine:
    ``[layer4 /32, layer3 /16, layer2 /8, layer1 /4, stem ReLU /2]``.
    """

    def __init__(self, arch: str = "resnet18", in_channels: int = 3, width: int = 64,
                 norm: str = "batch", pool: str = "max"):
        if arch not in RESNET_DEPTHS:
            raise ValueError(f"unknown backbone {arch!r}; expected one of {sorted(RESNET_DEPTHS)}")
        block, depths = RESNET_DEPTHS[arch]
        stem = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        if pool == "max":
            down: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        elif pool == "conv":
            down = nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False)
        else:
            raise ValueError(f"unknown pool {pool!r}; expected 'max' or 'conv'")
        layers = []
        cin = width
        for i, depth in enumerate(depths):
            w = width * 2**i
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, w, 2 if (j == 0 and i > 0) else 1, norm))
                cin = w * block.expansion
            layers.append(nn.Sequential(*blocks))
        super().__init__(stem, make_norm(norm, width), nn.ReLU(inplace=True), down, *layers)
        self.arch = arch
        self.in_channels = in_channels
        self.channels = [cin, cin // 2, cin // 4, cin // 8, width]  # matches features() order

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Skip features ``[layer4, layer3, layer2, layer1, stem]`` for ``x`` [B, in_channels, H, W]."""
        out: list[torch.Tensor] = []
        for index, child in enumerate(self):
            x = child(x)
            if index in (2, 4, 5, 6, 7):
                out.append(x)
        return out[::-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The final feature map ``[B, channels[0], H / 32, W / 32]``."""
        return self.features(x)[0]


def load_torchvision_resnet(encoder: ResNetEncoder, state_dict: Mapping[str, torch.Tensor],
                            strict: bool = True) -> None:
    """Load a torchvision-layout ResNet state dict (``conv1.weight``, ``layer1.0.bn1.running_mean``, ...).

    The classifier (``fc.*``) is dropped. For instance-norm encoders the BN affine parameters become the
    instance norm's and running statistics are dropped. If the encoder has a 4-channel stem and the
    checkpoint a 3-channel one, the RGB filters are kept and the 4th channel's filters start at zero.
    """
    renamed: dict[str, torch.Tensor] = {}
    instance = isinstance(encoder[1], InstanceNorm)
    for name, value in state_dict.items():
        if name.startswith("fc."):
            continue
        head, _, rest = name.partition(".")
        if head == "conv1":
            name = f"0.{rest}"
        elif head == "bn1":
            name = f"1.{rest}"
        elif head.startswith("layer") and head[5:].isdigit():
            name = f"{3 + int(head[5:])}.{rest}"
        if instance:
            parts = name.split(".")
            if parts[-1] in ("running_mean", "running_var", "num_batches_tracked"):
                continue
            if _is_norm_param(parts):
                name = ".".join(parts[:-1] + ["norm", parts[-1]])
        renamed[name] = value
    stem = renamed.get("0.weight")
    if stem is not None and stem.shape[1] != encoder.in_channels:
        grown = torch.zeros(stem.shape[0], encoder.in_channels, *stem.shape[2:], dtype=stem.dtype)
        keep = min(stem.shape[1], encoder.in_channels)
        grown[:, :keep] = stem[:, :keep]
        renamed["0.weight"] = grown
    encoder.load_state_dict(renamed, strict=strict)


def _is_norm_param(parts: Sequence[str]) -> bool:
    if parts[-1] not in ("weight", "bias"):
        return False
    owner = parts[-2]
    return owner == "1" and len(parts) == 2 or owner.startswith("bn") or (
        len(parts) >= 3 and parts[-3] == "downsample" and owner == "1"
    )


# ---------------------------------------------------------------------------------------------- U-Net


class UpsampleBlock(nn.Module):
    """x2 transposed conv + norm + ReLU, concat the skip, 3x3 conv + norm + ReLU (official names)."""

    def __init__(self, cin: int, cout: int, skip: int, norm: str = "instance"):
        super().__init__()
        biased = norm == "none"
        self.up = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=biased)
        self.bn1 = make_norm(norm, cout)
        self.conv2 = nn.Conv2d(cout + skip, cout, 3, padding=1, bias=biased)
        self.bn2 = make_norm(norm, cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.relu(self.bn1(self.up(x)))
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.relu(self.bn2(self.conv2(x)))


class ResUNet(nn.Module):
    """U-Net on a :class:`ResNetEncoder` (the official ``ResEncUnet`` with parametric upsampling).

    ``forward(x)`` returns ``(out [B, classes, H, W] | None, features)`` where ``features`` is the
    encoder's skip list ``[layer4, layer3, layer2, layer1, stem]``. With ``decoder=False`` the module
    has no decoder (and no parameters that a feature-only use would leave without gradients).
    """

    def __init__(self, backbone: ResNetEncoder, classes: int,
                 decoder_filters: Sequence[int] = (512, 384, 256, 128, 32), norm: str = "instance",
                 decoder: bool = True):
        super().__init__()
        self.backbone = backbone
        self.has_decoder = decoder
        if decoder:
            if len(decoder_filters) != 5:
                raise ValueError("decoder_filters needs five widths (one per x2 upsampling)")
            skips = backbone.channels[1:] + [0]  # layer3, layer2, layer1, stem, none (full res)
            ins = [backbone.channels[0], *decoder_filters[:-1]]
            self.upsample_blocks = nn.ModuleList(
                UpsampleBlock(cin, cout, skip, norm) for cin, cout, skip in zip(ins, decoder_filters, skips)
            )
            self.final_conv = nn.Conv2d(decoder_filters[-1], classes, 1)

    def forward(self, x: torch.Tensor, decode: bool = True) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        feats = self.backbone.features(x)
        if not (decode and self.has_decoder):
            return None, feats
        y = feats[0]
        skips: list[torch.Tensor | None] = [*feats[1:], None]
        for block, skip in zip(self.upsample_blocks, skips):
            y = block(y, skip)
        return self.final_conv(y), feats


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad the last two dims of ``x`` up to multiples of ``multiple``; returns (padded, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)
