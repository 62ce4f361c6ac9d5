"""Baseline predictions a trained renderer has to beat, on the same references and target as the model.

All return PREMULTIPLIED RGBA [B, 4, H, W] in [0, 1], like the renderer. Inputs: ``ref_rgba``
[B, n, 4, H, W] straight RGBA of the sheet (the n references, cropped as the model sees them),
``ref_udp`` [B, n, 4, H, W] their UDPs, ``target_udp`` [B, 4, H, W], ``target_alpha`` [B, 1, H, W] the
ground-truth alpha of the target.

* :func:`empty`: all transparent. Its L_photo is the target's mean alpha-weighted intensity,
  mean over pixels of a * (r + g + b + 1) / 4 (straight r, g, b), since every premultiplied channel
  of the truth counts once in full.
* :func:`mean_colour_silhouette`: the ground-truth mask filled with the mean colour of the SHEET's
  foreground pixels (alpha-weighted mean of the references' straight RGB). An oracle for shape: a model
  that has learned the shape but not where each colour goes cannot beat it.
* :func:`nearest_reference`: the reference image whose pose is closest to the target's, as drawn (no
  warping). Pose distance: mean L1 between the reference's UDP and the target's UDP (landmarks and
  occupancy, in the crops' image frame), so the same pose from the same camera is distance 0.
"""

from __future__ import annotations

import torch

BASELINES = ("empty", "silhouette", "nearest")


def empty(target_alpha: torch.Tensor) -> torch.Tensor:
    b, _, h, w = target_alpha.shape
    return target_alpha.new_zeros(b, 4, h, w)


def sheet_mean_colour(ref_rgba: torch.Tensor) -> torch.Tensor:
    """Alpha-weighted mean straight RGB of the references' pixels: [B, n, 4, H, W] -> [B, 3]."""
    alpha = ref_rgba[:, :, 3:4]
    num = (ref_rgba[:, :, :3] * alpha).sum(dim=(1, 3, 4))
    return num / alpha.sum(dim=(1, 3, 4)).clamp_min(1e-6)


def mean_colour_silhouette(ref_rgba: torch.Tensor, target_alpha: torch.Tensor) -> torch.Tensor:
    colour = sheet_mean_colour(ref_rgba)[:, :, None, None]
    return torch.cat([colour * target_alpha, target_alpha], dim=1)


def pose_distance(ref_udp: torch.Tensor, target_udp: torch.Tensor) -> torch.Tensor:
    """Mean L1 between each reference UDP and the target UDP: -> [B, n]."""
    return (ref_udp - target_udp[:, None]).abs().flatten(2).mean(2)


def nearest_reference(ref_rgba: torch.Tensor, ref_udp: torch.Tensor,
                      target_udp: torch.Tensor) -> torch.Tensor:
    idx = pose_distance(ref_udp, target_udp).argmin(dim=1)
    chosen = ref_rgba[torch.arange(ref_rgba.shape[0], device=ref_rgba.device), idx]
    return torch.cat([chosen[:, :3] * chosen[:, 3:4], chosen[:, 3:4]], dim=1)


def all_baselines(ref_rgba: torch.Tensor, ref_udp: torch.Tensor, target_udp: torch.Tensor,
                  target_alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every baseline of :data:`BASELINES`, premultiplied RGBA [B, 4, H, W]."""
    return {
        "empty": empty(target_alpha),
        "silhouette": mean_colour_silhouette(ref_rgba, target_alpha),
        "nearest": nearest_reference(ref_rgba, ref_udp, target_udp),
    }
