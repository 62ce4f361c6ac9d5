"""Summary figures of a dataset, from its manifests: counts, labelled share, bytes, split ratio,
torn-label shares."""

from __future__ import annotations

from pathlib import Path

from conrdata.dataset.manifests import MANIFEST_DIR, read_dataset_info, read_manifest
from conrdata.dataset.validate import DEFAULT_MAX_TORN, torn_distribution
from conrdata.errors import UserError


def summarize(out_dir) -> dict:
    """{"characters", "clips", "images", "labelled_images", "labelled_share", "one_shot_clips",
    "unlabelled_clips", "shards", "bytes", "bytes_per_image", "splits": {split: {...}},
    "val_share_characters", "val_share_images", "torn_share": {"images", "mean", "max",
    "over_threshold", "threshold"} (images with a measured torn share, from clips.parquet; the
    threshold is the dataset's synth ``max_torn``), "dataset": dataset.json}."""
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST_DIR / "shards.parquet").exists():
        raise UserError(
            "no manifests/shards.parquet: not a dataset folder (run synth or pack-drawn first)", out_dir
        )
    characters = read_manifest(out_dir, "characters")
    clips = read_manifest(out_dir, "clips")
    shards = read_manifest(out_dir, "shards")
    with_clips = {r["character"] for r in clips}
    splits = {}
    for split in ("train", "val"):
        sc = [r for r in clips if r["split"] == split]
        splits[split] = {
            "characters": len({r["character"] for r in sc}),
            "clips": len(sc),
            "images": sum(r["n_images"] for r in sc),
            "labelled_images": sum(r["n_labelled"] for r in sc),
            "shards": sum(r["split"] == split for r in shards),
            "bytes": sum(r["bytes"] for r in shards if r["split"] == split),
        }
    images = sum(r["n_images"] for r in clips)
    labelled = sum(r["n_labelled"] for r in clips)
    total_bytes = sum(r["bytes"] for r in shards)
    n_chars = len(with_clips)
    info = read_dataset_info(out_dir)
    threshold = (info.get("metadata") or {}).get("synth", {}).get("max_torn", DEFAULT_MAX_TORN)
    shares = [v for r in clips for v in (r.get("torn_shares") or []) if v is not None]
    return {
        "characters": n_chars,
        "characters_registered": len(characters),
        "clips": len(clips),
        "images": images,
        "labelled_images": labelled,
        "labelled_share": labelled / images if images else 0.0,
        "one_shot_clips": sum(r["n_images"] == 1 for r in clips),
        "unlabelled_clips": sum(r["n_labelled"] == 0 for r in clips),
        "shards": len(shards),
        "bytes": total_bytes,
        "bytes_per_image": total_bytes / images if images else 0.0,
        "splits": splits,
        "val_share_characters": splits["val"]["characters"] / n_chars if n_chars else 0.0,
        "val_share_images": splits["val"]["images"] / images if images else 0.0,
        "torn_share": torn_distribution(shares, float(threshold)),
        "dataset": info,
    }


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_summary(s: dict) -> str:
    lines = [
        f"characters   {s['characters']}",
        f"clips        {s['clips']}  (one-shot {s['one_shot_clips']}, unlabelled {s['unlabelled_clips']})",
        f"images       {s['images']}  (labelled {s['labelled_images']}, {100 * s['labelled_share']:.1f}%)",
        f"shards       {s['shards']}  ({_size(s['bytes'])}, {_size(s['bytes_per_image'])} per image)",
    ]
    for split, v in s["splits"].items():
        lines.append(
            f"{split:<5}        {v['characters']} characters, {v['clips']} clips, {v['images']} images, "
            f"{v['shards']} shards, {_size(v['bytes'])}"
        )
    lines.append(
        f"split ratio  val = {100 * s['val_share_characters']:.1f}% of characters, "
        f"{100 * s['val_share_images']:.1f}% of images"
    )
    t = s.get("torn_share") or {}
    if t.get("images"):
        lines.append(
            f"torn labels  {t['images']} images measured, mean {100 * t['mean']:.2f}%, "
            f"max {100 * t['max']:.2f}%, {t['over_threshold']} over {100 * t['threshold']:.1f}%"
        )
    else:
        lines.append("torn labels  not measured (no image records a torn_share)")
    return "\n".join(lines)
