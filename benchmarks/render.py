"""Benchmark the CoNR networks: parameter counts and CPU rendering speed. Prints JSON.

Per-frame figures are medians over batches (a shared machine stalls single batches); the machine's
load average at the start is recorded next to them.

Figures:
  params_m        parameters per network (millions) for every preset, and the paper's / official
                  release's figures for the official architecture next to ours;
  timing          per timed preset, at ``--size`` px with ``--views`` reference views (random weights and
                  inputs; speed does not depend on the values):
                    sheet_encode_ms        encoding the sheet once,
                    ms_per_frame_cached    rendering with the sheet encoded once (what `render` does),
                    ms_per_frame_uncached  re-encoding the sheet for every batch (the baseline),
                    fps_sequence           frames per second for a ``--frames`` sequence, one encode included.
The official architecture is slow on CPU; it is timed on ``--official-frames`` frames only and its
sequence figure is extrapolated from them (``"fps_sequence_estimated": true``).

    python benchmarks/render.py                       # official (2 frames) + small (30 frames)
    python benchmarks/render.py --presets tiny --frames 30 --size 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conrmodel.models.factory import PRESETS, build_detector, build_renderer  # noqa: E402
from conrmodel.models.official import PAPER_PARAMS_M  # noqa: E402


def _m(module: torch.nn.Module) -> float:
    return round(sum(p.numel() for p in module.parameters()) / 1e6, 3)


def param_table() -> dict:
    table = {}
    for preset in PRESETS:
        ren = build_renderer(preset)
        det = build_detector(preset)
        row = {part: _m(getattr(ren, part)) for part in PAPER_PARAMS_M}
        row["renderer_total"] = _m(ren)
        row["detector"] = _m(det)
        table[preset] = row
        del ren, det
    table["paper_official"] = dict(PAPER_PARAMS_M)
    return table


def _inputs(batch: int, views: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    occ = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    target = torch.cat([torch.rand(batch, 3, size, size, generator=g) * occ, occ], 1)
    refs = torch.rand(1, views, 4, size, size, generator=g)
    ref_udp = torch.rand(1, views, 4, size, size, generator=g)
    return target, refs, ref_udp


@torch.no_grad()
def time_preset(preset: str, size: int, views: int, frames: int, batch: int, sequence: int) -> dict:
    """Cached and uncached timings interleaved batch by batch, so drifting machine load hits both alike."""
    torch.manual_seed(0)
    ren = build_renderer(preset).eval()
    target, refs, ref_udp = _inputs(batch, views, size)
    ref_udp = ref_udp if ren.reference_udp else None
    ren.render(target, ren.encode_sheet(refs, ref_udp))  # warm-up at the timed shapes (oneDNN primitives)

    t = time.perf_counter()
    cache = ren.encode_sheet(refs, ref_udp)
    encode_s = time.perf_counter() - t

    cached, uncached = [], []  # seconds per frame, one entry per batch
    done = 0
    while done < frames:
        b = min(batch, frames - done)
        t = time.perf_counter()
        ren.render(target[:b], cache)
        cached.append((time.perf_counter() - t) / b)
        t = time.perf_counter()
        ren.render(target[:b], ren.encode_sheet(refs, ref_udp))
        uncached.append((time.perf_counter() - t) / b)
        done += b
    # medians: on a shared machine single batches can stall for seconds
    cached_s, uncached_s = statistics.median(cached), statistics.median(uncached)

    measured = frames >= sequence
    if measured:
        t = time.perf_counter()
        cache = ren.encode_sheet(refs, ref_udp)
        done = 0
        while done < sequence:
            b = min(batch, sequence - done)
            ren.render(target[:b], cache)
            done += b
        seq_s = time.perf_counter() - t
    else:
        seq_s = encode_s + cached_s * sequence
    return {
        "preset": preset, "size": size, "views": views, "batch": batch, "frames_timed": frames,
        "sheet_encode_ms": round(1000 * encode_s, 1),
        "ms_per_frame_cached": round(1000 * cached_s, 1),
        "ms_per_frame_uncached": round(1000 * uncached_s, 1),
        "caching_speedup": round(uncached_s / cached_s, 2),
        "sequence_frames": sequence,
        "fps_sequence": round(sequence / seq_s, 3),
        "fps_sequence_estimated": not measured,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="official,small", help="comma-separated presets to time")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--frames", type=int, default=30, help="frames timed (and sequence length)")
    ap.add_argument("--official-frames", type=int, default=2, help="frames timed for the official preset")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {
        "benchmark": "render",
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "device": "cpu",
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "params_m": param_table(),
        "timing": [],
    }
    for preset in [p for p in args.presets.split(",") if p]:
        frames = args.official_frames if preset == "official" else args.frames
        batch = min(args.batch, frames)
        result["timing"].append(time_preset(preset, args.size, args.views, frames, batch, args.frames))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return result


if __name__ == "__main__":
    main()
