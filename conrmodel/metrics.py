"""Image metrics of a rendered character against its ground truth, per sample.

Inputs are PREMULTIPLIED RGBA [N, 4, H, W] in [0, 1] (the renderer's output convention; the ground
truth premultiplied the same way), so "RGB" below means the character composited on black.

* ``photo``: the paper's L_photo (Eq. 4), mean L1 over all four premultiplied channels
  (:func:`conrmodel.train.losses.photo_loss`). Dominated by the background on small characters.
* ``fg_l1``: mean absolute RGB error over the ground-truth foreground (alpha > 0.5) only.
* ``chroma_l1``: the same over each pixel's colour minus its own grey level (rgb - mean(rgb)): what a grey
  or one-colour figure gets wrong, blind to light and dark.
* ``psnr`` / ``ssim``: torchmetrics' PSNR and SSIM (data range 1, Gaussian window 11, sigma 1.5) on RGB
  over the whole image; ``psnr_fg`` / ``ssim_fg`` restrict them to the foreground (the MSE, resp. the
  SSIM map, averaged over foreground pixels only).

Every function returns a float32 vector [N]; a sample without foreground gets 0 for the masked errors
and NaN-free values throughout.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from conrmodel.train.losses import photo_loss

FG_THRESHOLD = 0.5
METRIC_NAMES = ("photo", "fg_l1", "chroma_l1", "psnr", "psnr_fg", "ssim", "ssim_fg")


def foreground(gt: torch.Tensor) -> torch.Tensor:
    """Ground-truth foreground mask [N, 1, H, W] (float 0/1) from premultiplied RGBA."""
    return (gt[:, 3:4] > FG_THRESHOLD).float()


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` [N, C, H, W] over the pixels where ``mask`` [N, 1, H, W] is 1, per sample."""
    num = (x * mask).flatten(1).sum(1)
    return num / (mask.flatten(1).sum(1) * x.shape[1]).clamp_min(1.0)


def chroma(rgb: torch.Tensor) -> torch.Tensor:
    """Each pixel's colour minus its own grey level: [N, 3, H, W] -> [N, 3, H, W]."""
    return rgb - rgb.mean(dim=1, keepdim=True)


def fg_l1(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return _masked_mean((pred[:, :3] - gt[:, :3]).abs(), foreground(gt))


def chroma_l1(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return _masked_mean((chroma(pred[:, :3]) - chroma(gt[:, :3])).abs(), foreground(gt))


def _psnr(mse: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def psnr(pred: torch.Tensor, gt: torch.Tensor, masked: bool = False) -> torch.Tensor:
    """PSNR in dB of RGB (data range 1) over the image, or over the foreground with ``masked``.
    Capped at 100 dB for identical images."""
    sq = (pred[:, :3].float() - gt[:, :3].float()) ** 2
    mask = foreground(gt) if masked else torch.ones_like(sq[:, :1])
    return _psnr(_masked_mean(sq, mask))


def ssim(pred: torch.Tensor, gt: torch.Tensor, masked: bool = False) -> torch.Tensor:
    """SSIM of RGB (torchmetrics, Gaussian 11 x 11, sigma 1.5, data range 1) per sample; with ``masked`` the
    SSIM map is averaged over the ground-truth foreground only."""
    p, g = pred[:, :3].float().clamp(0, 1), gt[:, :3].float().clamp(0, 1)
    value, full = structural_similarity_index_measure(
        p, g, data_range=1.0, reduction="none", return_full_image=True
    )
    if not masked:
        return value.float()
    return _masked_mean(full.float(), foreground(gt))


def all_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of :data:`METRIC_NAMES` (vectors [N]) for premultiplied ``pred`` and ``gt``."""
    pred, gt = pred.float(), gt.float()
    return {
        "photo": photo_loss(pred, gt),
        "fg_l1": fg_l1(pred, gt),
        "chroma_l1": chroma_l1(pred, gt),
        "psnr": psnr(pred, gt),
        "psnr_fg": psnr(pred, gt, masked=True),
        "ssim": ssim(pred, gt),
        "ssim_fg": ssim(pred, gt, masked=True),
    }
