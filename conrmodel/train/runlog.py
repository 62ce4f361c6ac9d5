"""Run logging: TensorBoard scalars and image grids, a JSONL log, a tqdm bar with it/s and ETA.

Only rank 0 logs (``enabled=False`` elsewhere makes every call a no-op).
``RUN_DIR/log.jsonl`` gets one JSON object per call of :meth:`RunLogger.scalars`:
``{"step": int, "time": unix seconds, "split": "train"|"val"|..., "<name>": float, ...}``.
TensorBoard event files go to ``RUN_DIR/tensorboard``; image grids are also saved
as ``RUN_DIR/images/<tag>-<step>.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm


def checkerboard(h: int, w: int, cell: int = 8) -> np.ndarray:
    """H x W x 3 float32 light-grey checkerboard in [0, 1] (shows transparency)."""
    yy, xx = np.mgrid[0:h, 0:w]
    on = ((yy // cell + xx // cell) % 2).astype(np.float32)
    return np.repeat((0.8 + 0.15 * on)[..., None], 3, axis=2)


def show_rgba(rgba: np.ndarray, premultiplied: bool = False) -> np.ndarray:
    """[4, H, W] or [H, W, 4] float in [0, 1] -> H x W x 3 uint8 over a checkerboard."""
    x = np.asarray(rgba, np.float32)
    if x.shape[0] == 4 and x.shape[-1] != 4:
        x = np.moveaxis(x, 0, -1)
    a = np.clip(x[..., 3:4], 0, 1)
    rgb = np.clip(x[..., :3], 0, 1)
    fg = rgb if premultiplied else rgb * a
    out = fg + checkerboard(*x.shape[:2]) * (1 - a)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def show_udp(udp: np.ndarray) -> np.ndarray:
    """UDP [4, H, W] or [H, W, 4] -> H x W x 3 uint8: landmarks xyz as RGB, background black."""
    x = np.asarray(udp, np.float32)
    if x.shape[0] == 4 and x.shape[-1] != 4:
        x = np.moveaxis(x, 0, -1)
    return (np.clip(x[..., :3] * (x[..., 3:4] > 0.5), 0, 1) * 255 + 0.5).astype(np.uint8)


def make_grid(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tiles (H x W x 3 uint8, all the same size) in rows -> one uint8 image (short rows padded)."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = tile
    return out


def sample_row(
    ref_rgba: np.ndarray, target_udp: np.ndarray, pred: np.ndarray, gt: np.ndarray
) -> list[np.ndarray]:
    """One grid row: references (straight RGBA [n, 4, H, W]), target UDP, prediction (premultiplied
    RGBA), ground truth (straight RGBA)."""
    return [show_rgba(r) for r in ref_rgba] + [show_udp(target_udp), show_rgba(pred, True), show_rgba(gt)]


class RunLogger:
    def __init__(
        self,
        run_dir: str | Path,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        tensorboard: bool = True,
        progress: bool = True,
    ):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._tb = None
        self._bar = None
        self._jsonl = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # lazy: start-up cost, and may be missing

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard missing: JSONL still works
                self._tb = None
        if progress:
            self._bar = tqdm(
                total=total_steps,
                initial=start_step,
                unit="it",
                dynamic_ncols=True,
                desc="train",
                smoothing=0.1,
            )

    def scalars(self, step: int, values: dict[str, float], split: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "time": round(time.time(), 3), "split": split}
        record.update({k: float(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{split}/{k}", float(v), int(step))

    def image(self, step: int, tag: str, grid: np.ndarray) -> Path | None:
        if not self.enabled:
            return None
        folder = self.run_dir / "images"
        folder.mkdir(exist_ok=True)
        path = folder / f"{tag}-{int(step):07d}.png"
        Image.fromarray(grid).save(path)
        if self._tb is not None:
            self._tb.add_image(tag, grid, int(step), dataformats="HWC")
        return path

    def progress(self, n: int = 1, **postfix) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(
                    {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in postfix.items()}, refresh=False
                )

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._jsonl is not None:
            self._jsonl.close()
        self._bar = self._tb = self._jsonl = None
