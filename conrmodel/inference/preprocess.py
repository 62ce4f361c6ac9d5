"""Framing and resizing of network inputs and outputs, two ways: ``ours`` and ``official``.

Both crop each image to a square around its character (side = ``margin`` x the longer side of the
bounding box, centred on the box, zero padded outside the image) and resize the crop to the network's
``size x size``; the rendered crop is resized back to the square's side and pasted into a transparent
canvas of the target's own size ("cropped back to the input framing").

``ours`` (what our checkpoints are trained with): margin 1.1, the sheet premultiplied in float32 and
resized with antialiased bilinear (torch), the target UDP binarised (occupancy > 0.5) and all four
channels resized nearest-neighbour, the output resized back in float and written with straight alpha.

``official`` (what the official release's ``data_loader.py`` / ``train.py --mode=test`` do, and so what
its weights expect): margin 1.0; the sheet premultiplied into uint8 (``rgb * (a / 255)`` truncated) and
resized as uint8 with OpenCV, ``INTER_LINEAR`` when enlarging in both directions, else ``INTER_AREA``;
the target's occupancy read as stored (soft): its mask is ``floor(occ * 255)`` as uint8, framed on
mask > 0 (occ >= 1/255) and resized like the sheet, while the landmarks are resized with
``INTER_NEAREST_EXACT``; the network sees ``(xyz * mask / 255, mask / 255)``. The output is truncated to
uint8 premultiplied RGBA, resized back with ``INTER_AREA`` and pasted: the official PNGs hold that
premultiplied colour; ``straight_from_premultiplied`` gives straight alpha.

Arrays are H x W x C, RGB order, row 0 at the top; landmark arrays of the official form hold xyz already
multiplied by occupancy (see :func:`conrdata.udp.to_official`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

PREPROCESS_OURS = "ours"
PREPROCESS_OFFICIAL = "official"
PREPROCESS_MODES = (PREPROCESS_OFFICIAL, PREPROCESS_OURS)
DEFAULT_MARGIN = {PREPROCESS_OURS: 1.1, PREPROCESS_OFFICIAL: 1.0}


# ---------------------------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class Box:
    """A square crop: top-left corner (may be negative) and side, in pixels of the source image."""

    top: int
    left: int
    side: int


def square_box(mask: np.ndarray, margin: float = 1.1) -> Box | None:
    """Square around the True pixels of ``mask`` (H x W), ``margin`` x its longer side; None if empty.

    The corner is rounded half to even (Python's ``round``), as the official loader does.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(2, int(math.ceil(max(y1 - y0, x1 - x0) * margin)))
    top = int(round((y0 + y1) / 2 - side / 2))
    left = int(round((x0 + x1) / 2 - side / 2))
    return Box(top, left, side)


def crop_square(arr: np.ndarray, box: Box) -> np.ndarray:
    """``arr`` (H x W x C) cut to ``box``, zero outside the image."""
    h, w = arr.shape[:2]
    out = np.zeros((box.side, box.side, arr.shape[2]), arr.dtype)
    y0, x0 = max(box.top, 0), max(box.left, 0)
    y1, x1 = min(box.top + box.side, h), min(box.left + box.side, w)
    if y1 > y0 and x1 > x0:
        out[y0 - box.top : y1 - box.top, x0 - box.left : x1 - box.left] = arr[y0:y1, x0:x1]
    return out


def paste_square(canvas: np.ndarray, patch: np.ndarray, box: Box) -> np.ndarray:
    """Write ``patch`` (side x side x C) into ``canvas`` at ``box`` (clipped to the canvas); in place."""
    h, w = canvas.shape[:2]
    y0, x0 = max(box.top, 0), max(box.left, 0)
    y1, x1 = min(box.top + box.side, h), min(box.left + box.side, w)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = patch[y0 - box.top : y1 - box.top, x0 - box.left : x1 - box.left]
    return canvas


# ---------------------------------------------------------------------------------------------- ours


def resize_premultiplied(rgba: torch.Tensor, size: int) -> torch.Tensor:
    """[B,4,h,w] premultiplied -> [B,4,size,size], antialiased bilinear (no colour fringes)."""
    if rgba.shape[-1] == size and rgba.shape[-2] == size:
        return rgba
    out = F.interpolate(rgba, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp(0, 1)


def resize_udp(udp: torch.Tensor, size: int) -> torch.Tensor:
    """[B,4,h,w] UDP -> [B,4,size,size], nearest neighbour only (a blended landmark is not on the body)."""
    if udp.shape[-1] == size and udp.shape[-2] == size:
        return udp
    return F.interpolate(udp, size=(size, size), mode="nearest-exact")


def premultiply_float(rgba_u8: np.ndarray) -> np.ndarray:
    """uint8 straight RGBA (H x W x 4) -> float32 premultiplied RGBA in [0, 1]."""
    x = rgba_u8.astype(np.float32) / 255.0
    x[..., :3] *= x[..., 3:4]
    return x


# ---------------------------------------------------------------------------------------------- official


def premultiply_u8(rgba_u8: np.ndarray) -> np.ndarray:
    """uint8 straight RGBA -> uint8 premultiplied RGBA, truncating as the official loader does."""
    a = rgba_u8[..., 3:4]
    rgb = (rgba_u8[..., :3] * (a / 255.0)).clip(0, 255).astype(np.uint8)
    return np.concatenate([rgb, a], axis=-1)


def resize_like_official(img: np.ndarray, size: int) -> np.ndarray:
    """A square uint8 image -> ``size x size`` with OpenCV: ``INTER_LINEAR`` when enlarging in both
    directions, ``INTER_AREA`` otherwise, unchanged when already that size (the official rule)."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    mode = cv2.INTER_LINEAR if size > w and size > h else cv2.INTER_AREA
    out = cv2.resize(img, (size, size), interpolation=mode)
    return out.reshape(size, size, *img.shape[2:])


def resize_nearest_exact(img: np.ndarray, size: int) -> np.ndarray:
    """Landmarks -> ``size x size`` with OpenCV's ``INTER_NEAREST_EXACT`` (the official label resize)."""
    if img.shape[:2] == (size, size):
        return img
    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
    return out.reshape(size, size, *img.shape[2:])


def official_mask_u8(official_udp: np.ndarray) -> np.ndarray:
    """The official loader's target mask: ``(occ * 255)`` clipped and truncated to uint8 (H x W)."""
    return (official_udp[..., 3] * 255).clip(0, 255).astype(np.uint8)


def official_sheet_crop(rgba_u8: np.ndarray, size: int, margin: float = 1.0) -> np.ndarray | None:
    """A sheet image (uint8 straight RGBA) -> the official network input: uint8 premultiplied RGBA,
    ``size x size``, framed on alpha > 0; None when the image has no opaque pixel."""
    box = square_box(rgba_u8[..., 3] > 0, margin)
    if box is None:
        return None
    return resize_like_official(crop_square(premultiply_u8(rgba_u8), box), size)


def official_target_crop(official_udp: np.ndarray, size: int,
                         margin: float = 1.0) -> tuple[Box, np.ndarray, np.ndarray] | None:
    """An official-form target (H x W x 4 float32, soft occupancy as stored) -> ``(box, landmarks,
    mask)``: the crop square, the four channels resized nearest-exact (``size x size x 4`` float32) and
    the uint8 mask resized like an image (``size x size``). None when no pixel has occ >= 1/255."""
    mask = official_mask_u8(official_udp)
    box = square_box(mask > 0, margin)
    if box is None:
        return None
    landmarks = resize_nearest_exact(crop_square(np.ascontiguousarray(official_udp, np.float32), box), size)
    mask = resize_like_official(crop_square(mask[..., None], box), size)[..., 0]
    return box, landmarks, mask


def official_network_target(landmarks: np.ndarray, mask_u8: np.ndarray) -> np.ndarray:
    """What the renderer's target input holds in official mode: xyz as resized, occupancy = mask / 255
    (the renderer multiplies xyz by it, giving the official ``(xyz * a, a)``); H x W x 4 float32."""
    out = np.empty(landmarks.shape, np.float32)
    out[..., :3] = landmarks[..., :3]
    out[..., 3] = mask_u8.astype(np.float32) / 255.0
    return out


def official_output(premultiplied: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """The renderer's premultiplied RGBA (S x S x 4 float) -> the official frame: truncated to uint8,
    resized to the box with ``INTER_AREA``, pasted into a transparent H x W canvas (premultiplied)."""
    u8 = (np.clip(premultiplied, 0.0, 1.0) * 255).astype(np.uint8)
    back = u8 if u8.shape[0] == box.side else cv2.resize(u8, (box.side, box.side),
                                                          interpolation=cv2.INTER_AREA)
    return paste_square(np.zeros((*shape, 4), np.uint8), back.reshape(box.side, box.side, 4), box)


def straight_from_premultiplied(rgba_u8: np.ndarray) -> np.ndarray:
    """uint8 premultiplied RGBA -> uint8 straight RGBA (rounded; colour 0 where alpha is 0)."""
    a = rgba_u8[..., 3:4].astype(np.float32)
    rgb = np.where(a > 0, rgba_u8[..., :3] * 255.0 / np.maximum(a, 1), 0)
    return np.concatenate([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), rgba_u8[..., 3:4]], axis=-1)


def premultiplied_from_straight(rgba_u8: np.ndarray) -> np.ndarray:
    """uint8 straight RGBA -> uint8 premultiplied RGBA, rounded (for writing official-form PNGs)."""
    a = rgba_u8[..., 3:4].astype(np.float32)
    rgb = np.clip(rgba_u8[..., :3] * a / 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.concatenate([rgb, rgba_u8[..., 3:4]], axis=-1)


def official_eval_crop(rgba_u8: np.ndarray, udp: np.ndarray, size: int,
                       margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One labelled image (straight RGBA uint8, our UDP) framed and resized the official way, for
    evaluation: ``(rgba, target)`` where ``rgba`` is straight uint8 ``size x size x 4`` (resized
    premultiplied in uint8 as the official sheet) and ``target`` the renderer's target input
    (:func:`official_network_target`). Both use the box of the UDP's occupancy."""
    official = np.concatenate([udp[..., :3] * udp[..., 3:4], udp[..., 3:4]], axis=-1).astype(np.float32)
    framed = official_target_crop(official, size, margin)
    if framed is None:
        return np.zeros((size, size, 4), np.uint8), np.zeros((size, size, 4), np.float32)
    box, landmarks, mask = framed
    rgba = resize_like_official(crop_square(premultiply_u8(rgba_u8), box), size)
    return straight_from_premultiplied(rgba), official_network_target(landmarks, mask)
