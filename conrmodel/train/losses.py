"""The paper's training losses (CoNR, Eq. 2-5), each returning a per-sample vector [N].

Per-sample vectors let the trainer weight samples (e.g. unlabeled drawn clips
get only the consistency term) and reduce with :func:`weighted_mean`.

* L_udp  (Eq. 2): L1 between predicted and ground-truth landmarks (UDP channels
  0-2), only where the ground truth has body (occupancy 1).
* L_mask (Eq. 2): binary cross-entropy between the detector's occupancy logit
  and the ground-truth occupancy.
* L_cons (Eq. 3): standard deviation of the detector's output over the k
  passes of one image pasted on k different backgrounds (landmarks and mask
  probability): the prediction must not depend on the background.
* L_photo (Eq. 4): L1 between rendered and ground-truth RGBA.
* L_vgg  (Eq. 5): VGG-19 feature distance, see :class:`conrmodel.models.vgg.VGGLoss`.

Tensors: UDP [N, 4, H, W] (xyz in [0, 1], occupancy), detector output
[N, 4, H, W] (landmarks in [0, 1], mask logit), RGBA [N, 4, H, W] in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def udp_loss(pred: torch.Tensor, gt_udp: torch.Tensor) -> torch.Tensor:
    """Masked L1 on landmarks: sum |pred_xyz - gt_xyz| * occ / (3 * sum occ), per sample."""
    occ = gt_udp[:, 3:4].float()
    diff = (pred[:, :3].float() - gt_udp[:, :3].float()).abs() * occ
    return diff.flatten(1).sum(1) / (3.0 * occ.flatten(1).sum(1)).clamp_min(1.0)


def mask_loss(pred: torch.Tensor, gt_udp: torch.Tensor) -> torch.Tensor:
    """BCE of the occupancy logit (channel 3) against the ground-truth occupancy, per sample."""
    bce = F.binary_cross_entropy_with_logits(pred[:, 3:4].float(), gt_udp[:, 3:4].float(), reduction="none")
    return bce.flatten(1).mean(1)


def consistency_loss(passes: torch.Tensor) -> torch.Tensor:
    """Std over the k background passes. ``passes`` [N, k, 4, H, W] raw detector output -> [N].

    Landmarks are compared as they are, the mask as a probability; with k = 1
    the loss is 0.
    """
    if passes.shape[1] < 2:
        return passes.new_zeros(passes.shape[0], dtype=torch.float32)
    x = torch.cat([passes[:, :, :3].float(), torch.sigmoid(passes[:, :, 3:4].float())], dim=2)
    return x.std(dim=1, unbiased=False).flatten(1).mean(1)


def photo_loss(pred_rgba: torch.Tensor, gt_rgba: torch.Tensor) -> torch.Tensor:
    """L1 over all four RGBA channels, per sample."""
    return (pred_rgba.float() - gt_rgba.float()).abs().flatten(1).mean(1)


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """sum(w * v) / max(sum(w), 1e-8); the plain mean when ``weight`` is None. Zero when all weights are 0."""
    if weight is None:
        return values.mean()
    weight = weight.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1e-8)


def predicted_udp(det_out: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Detector output [.., 4, H, W] (landmarks, logit) -> the UDP the renderer takes, differentiably.

    Forward value: occupancy = (sigmoid(logit) > threshold), landmarks clamped to [0, 1] times it,
    exactly what inference feeds the renderer (conrmodel.models.detector.udp_from_prediction); the
    gradient flows through the soft probability (straight-through estimator), so L_photo trains
    the detector end to end.
    """
    prob = torch.sigmoid(det_out[..., 3:4, :, :])
    occ = (prob > threshold).to(prob.dtype) + (prob - prob.detach())  # exactly 0/1 forward
    return torch.cat([det_out[..., :3, :, :].clamp(0, 1) * occ, occ], dim=-3)
