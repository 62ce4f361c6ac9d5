"""Contact sheets of a dataset: per image, RGBA over a checkerboard, UDP xyz as colour, and the mask.

One row per clip; a clip's images go left to right, each as three tiles
(RGBA | UDP xyz | mask). An unlabeled image shows a hatched tile for UDP and
its alpha as the mask. :func:`write_html` writes the same tiles as a page.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2
import numpy as np

from conrdata.dataset.codec import encode_rgba
from conrdata.dataset.schema import ClipArrays

LABEL_H = 14


def checkerboard(h: int, w: int, cell: int = 8) -> np.ndarray:
    """uint8 H x W x 3 light/dark grey checkerboard (RGB)."""
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2).astype(np.uint8)
    return np.where(board[..., None] == 1, 200, 150).astype(np.uint8).repeat(3, axis=2)


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 composited over a checkerboard -> RGB uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    bg = checkerboard(*rgba.shape[:2]).astype(np.float32)
    return (rgba[..., :3] * a + bg * (1 - a) + 0.5).astype(np.uint8)


def udp_colour(udp: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """UDP xyz -> RGB uint8 (x red, y green, z blue; background black); hatched grey when None."""
    if udp is None:
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
        hatch = ((yy + xx) // 4 % 2 == 0).astype(np.uint8) * 60 + 60
        return hatch[..., None].repeat(3, axis=2)
    xyz = np.nan_to_num(np.clip(udp[..., :3], 0, 1))
    return (xyz * 255 + 0.5).astype(np.uint8)


def mask_tile(rgba: np.ndarray, udp: np.ndarray | None) -> np.ndarray:
    """Occupancy (or alpha when unlabeled) as white on black; pixels where they disagree in red."""
    alpha = rgba[..., 3] >= 128
    body = alpha if udp is None else udp[..., 3] >= 0.5
    out = np.zeros((*rgba.shape[:2], 3), np.uint8)
    out[body] = 255
    out[alpha != body] = (255, 0, 0)
    return out


def _fit(img: np.ndarray, tile: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = tile / max(h, w)
    resized = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_NEAREST)
    out = np.full((tile, tile, 3), 32, np.uint8)
    y, x = (tile - resized.shape[0]) // 2, (tile - resized.shape[1]) // 2
    out[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return out


def clip_tiles(clip: ClipArrays, tile: int = 96, max_images: int = 8) -> list[list[np.ndarray]]:
    """Per image of the clip: [rgba-over-checkerboard, udp colour, mask], each tile x tile RGB uint8."""
    out = []
    for rgba, udp in list(zip(clip.rgba, clip.udp))[:max_images]:
        out.append(
            [
                _fit(over_checkerboard(rgba), tile),
                _fit(udp_colour(udp, rgba.shape[:2]), tile),
                _fit(mask_tile(rgba, udp), tile),
            ]
        )
    return out


def contact_sheet(clips: list[ClipArrays], tile: int = 96, max_images: int = 8) -> np.ndarray:
    """RGB uint8 sheet: one labelled row per clip."""
    if not clips:
        raise ValueError("no clips to preview")
    cols = min(max_images, max(len(c) for c in clips))
    gap = 2
    width = cols * (3 * tile + gap) + gap
    row_h = LABEL_H + tile + gap
    sheet = np.full((len(clips) * row_h + gap, width, 3), 24, np.uint8)
    for r, clip in enumerate(clips):
        y = r * row_h + gap
        label = f"{clip.key} [{clip.split}]"
        cv2.putText(
            sheet, label[:90], (gap, y + LABEL_H - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (230, 230, 230), 1
        )
        for c, tiles in enumerate(clip_tiles(clip, tile, max_images)):
            x = gap + c * (3 * tile + gap)
            sheet[y + LABEL_H : y + LABEL_H + tile, x : x + 3 * tile] = np.concatenate(tiles, axis=1)
    return sheet


def write_png(sheet: np.ndarray, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgba = np.concatenate([sheet, np.full((*sheet.shape[:2], 1), 255, np.uint8)], axis=2)
    path.write_bytes(encode_rgba(rgba))
    return path


def _data_uri(tile: np.ndarray) -> str:
    rgba = np.concatenate([tile, np.full((*tile.shape[:2], 1), 255, np.uint8)], axis=2)
    return "data:image/png;base64," + base64.b64encode(encode_rgba(rgba)).decode("ascii")


def write_html(clips: list[ClipArrays], path, tile: int = 128, max_images: int = 8, title: str = "") -> Path:
    """A self-contained HTML page (images inline) with a table row per clip and its metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in clips:
        cells = []
        for i, tiles in enumerate(clip_tiles(clip, tile, max_images)):
            im = clip.meta.get("images", [{}] * (i + 1))[i]
            caption = html.escape(f"{i:02d} pose {im.get('pose_id', '')} {im.get('source', '')}")
            imgs = "".join(f'<img src="{_data_uri(t)}" width="{tile}" height="{tile}">' for t in tiles)
            cells.append(f"<td><div>{imgs}</div><small>{caption}</small></td>")
        head = html.escape(f"{clip.key} | {clip.character_id} | {clip.split} | {len(clip)} images")
        rows.append(f"<tr><th colspan={max(1, len(cells))}>{head}</th></tr><tr>{''.join(cells)}</tr>")
    page = (
        "<!doctype html><meta charset='utf-8'><title>{t}</title>"
        "<style>body{{font-family:sans-serif;background:#222;color:#ddd}}th{{text-align:left}}"
        "td{{vertical-align:top;padding:4px}}img{{image-rendering:pixelated;margin-right:2px}}</style>"
        "<h1>{t}</h1><p>Per image: RGBA over a checkerboard | UDP xyz as RGB | mask "
        "(white body, red where alpha and occupancy disagree).</p><table>{rows}</table>"
    ).format(t=html.escape(title or "CoNR dataset preview"), rows="".join(rows))
    path.write_text(page, encoding="utf-8")
    return path
