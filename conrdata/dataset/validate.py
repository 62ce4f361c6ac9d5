"""Check a dataset end to end: every sample decodes, every UDP is sane, manifests agree with shards.

Each problem is a :class:`Problem` naming the shard, the key and the failure kind:

==================  ==========================================================================
truncated-tar       the tar ends early or a header is damaged
corrupt-png         an RGBA member does not decode as an 8-bit RGBA PNG
corrupt-udp         a UDP member is not a readable ``udpz`` container (or fails its CRC)
missing-file        ``KEY.json`` lists an image whose member is absent
bad-json            ``KEY.json`` is missing fields or does not parse
udp-dtype           UDP is not float32
udp-shape           UDP is not H x W x 4 with the RGBA's H and W
udp-range           a UDP value is outside [0, 1] (or NaN)
udp-occupancy       occupancy (channel 3) holds a value other than 0 and 1
udp-background      a pixel with occupancy 0 has a non-zero landmark
alpha-mismatch      RGBA alpha (>= 128) and UDP occupancy disagree on more than the tolerance
duplicate-key       the same key occurs twice
checksum            a shard's bytes or sha256 differ from shards.parquet
manifest            the manifests and the shards disagree (missing/unlisted shard or clip, counts)
split-leak          a character appears in both splits, or a clip sits in the other split's shard
bad-labels          an image's ``joints``/``keypoints``/``coco17``/``torn_share`` are malformed
==================  ==========================================================================

Skeleton labels: every labelled (UDP-carrying) image should record ``joints`` and ``keypoints``;
one that lacks them (a shard written before labels existed) is a *warning*, not a problem. The
report also gathers every image's ``torn_share`` (see :meth:`ValidationReport.torn_summary`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.dataset.manifests import (
    MANIFEST_DIR,
    SHARD_DIR,
    label_columns,
    read_dataset_info,
    read_manifest,
)
from conrdata.dataset.reader import ReadStats, iter_raw_samples
from conrdata.dataset.resplit import character_leaks
from conrdata.dataset.wds import SampleError, decode_sample
from conrdata.errors import FormatError, UserError

KINDS = (
    "truncated-tar",
    "corrupt-png",
    "corrupt-udp",
    "missing-file",
    "bad-json",
    "udp-dtype",
    "udp-shape",
    "udp-range",
    "udp-occupancy",
    "udp-background",
    "alpha-mismatch",
    "duplicate-key",
    "checksum",
    "manifest",
    "split-leak",
    "bad-labels",
)
DEFAULT_MAX_TORN = 0.02  # synth's default gate, for datasets that do not record theirs


@dataclass
class Problem:
    shard: str
    key: str
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"{self.shard}:{self.key}" if self.key else self.shard
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class ValidationReport:
    shards: int = 0
    clips: int = 0
    images: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    images_without_joints: int = 0
    torn_shares: list[float] = field(default_factory=list)
    max_torn: float = DEFAULT_MAX_TORN

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> Counter:
        return Counter(p.kind for p in self.problems)

    def add(self, shard: str, key: str, kind: str, message: str) -> None:
        assert kind in KINDS, kind
        self.problems.append(Problem(shard, key, kind, message))

    def torn_summary(self) -> dict:
        """Distribution of the images' torn shares: measured images, mean, max, count over ``max_torn``."""
        return torn_distribution(self.torn_shares, self.max_torn)


def torn_distribution(shares: list[float], threshold: float) -> dict:
    """{"images", "mean", "max", "over_threshold", "threshold"} of torn shares (mean/max None if none)."""
    values = np.asarray([v for v in shares if v is not None], np.float64)
    return {
        "images": int(len(values)),
        "mean": float(values.mean()) if len(values) else None,
        "max": float(values.max()) if len(values) else None,
        "over_threshold": int((values > threshold).sum()),
        "threshold": float(threshold),
    }


def _number_list(value, n: int, last_int: bool = False) -> bool:
    if not isinstance(value, list) or len(value) != n:
        return False
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value):
        return False
    return not last_int or value[-1] in (0, 1)


def check_image_labels(image: dict) -> list[str]:
    """What is malformed in one image entry's skeleton labels (missing fields are not checked here)."""
    out = []
    for name, n, last_int in (("joints", 3, False), ("keypoints", 3, True), ("coco17", 3, True)):
        value = image.get(name)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(_number_list(v, n, last_int) for v in value.values()):
            tail = " ending in 0 or 1" if last_int else ""
            out.append(f"{name} must map names to {n} finite numbers{tail}")
    if "joints" in image and "keypoints" in image and isinstance(image["joints"], dict) \
            and isinstance(image["keypoints"], dict) and set(image["joints"]) != set(image["keypoints"]):
        out.append("joints and keypoints name different bones")
    share = image.get("torn_share")
    if share is not None and not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
        out.append(f"torn_share must be a number in [0, 1], got {share!r}")
    return out


def check_udp_values(
    rgba: np.ndarray, udp: np.ndarray, alpha_tolerance: float = 0.02
) -> list[tuple[str, str]]:
    """(kind, message) for each value rule a float32 H x W x 4 UDP (and its RGBA) breaks."""
    out = []
    occ = udp[..., 3]
    finite = np.isfinite(udp)
    if not finite.all() or (udp[finite] < 0).any() or (udp[finite] > 1).any():
        bad = int((~finite).sum() + (udp[finite] < 0).sum() + (udp[finite] > 1).sum())
        out.append(("udp-range", f"{bad} values outside [0, 1] or not finite"))
    binary = (occ == 0) | (occ == 1)
    if not binary.all():
        out.append(("udp-occupancy", f"{int((~binary).sum())} occupancy values not in {{0, 1}}"))
    background = occ == 0
    if (udp[background][:, :3] != 0).any():
        n = int((udp[background][:, :3] != 0).any(axis=1).sum())
        out.append(("udp-background", f"{n} background pixels have non-zero landmarks"))
    alpha = rgba[..., 3] >= 128
    body = occ > 0  # a non-binary occupancy is reported as udp-occupancy, not again here
    mismatch = int((alpha != body).sum())
    union = int((alpha | body).sum())
    if mismatch > max(2, alpha_tolerance * union):
        out.append(("alpha-mismatch", f"alpha and occupancy disagree on {mismatch} of {union} pixels"))
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def validate(
    source,
    checksums: bool = True,
    values: bool = True,
    alpha_tolerance: float = 0.02,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Validate an OUT folder (shards and manifests) or a folder of bare shards."""
    root = Path(source)
    report = ValidationReport()
    if not root.is_dir():
        raise UserError("not a dataset folder", root)
    has_manifests = (root / MANIFEST_DIR / "shards.parquet").exists()
    report.max_torn = _dataset_max_torn(root) if has_manifests else DEFAULT_MAX_TORN
    shard_dir = root / SHARD_DIR if (root / SHARD_DIR).is_dir() else root
    on_disk = sorted(p.name for p in shard_dir.glob("*.tar"))
    listed: dict[str, dict] = {}
    clips_by_key: dict[str, dict] = {}
    characters: list[dict] = []
    if has_manifests:
        try:
            listed = {r["name"]: r for r in read_manifest(root, "shards")}
            clips_by_key = {r["key"]: r for r in read_manifest(root, "clips")}
            characters = read_manifest(root, "characters")
        except FormatError as err:
            report.add(MANIFEST_DIR, "", "manifest", err.message)
        for name in sorted(set(listed) - set(on_disk)):
            report.add(name, "", "manifest", "listed in shards.parquet but missing on disk")
        for name in sorted(set(on_disk) - set(listed)):
            report.add(name, "", "manifest", "shard on disk is not in shards.parquet")
    seen: dict[str, str] = {}
    char_split = {r["id"]: r["split"] for r in characters}
    for name in on_disk:
        path = shard_dir / name
        report.shards += 1
        if progress:
            progress(name)
        row = listed.get(name)
        if checksums and row is not None:
            size = path.stat().st_size
            if size != row["bytes"]:
                report.add(name, "", "checksum", f"{size} bytes on disk, manifest says {row['bytes']}")
            elif _sha256(path) != row["sha256"]:
                report.add(name, "", "checksum", "sha256 differs from shards.parquet")
        stats = ReadStats()
        in_shard: list[str] = []
        images = 0
        for sample in iter_raw_samples(path, stats, warn=False):
            key = sample["__key__"]
            in_shard.append(key)
            if key in seen:
                report.add(name, key, "duplicate-key", f"also in {seen[key]}")
            seen[key] = name
            try:
                clip = decode_sample(sample, udp=values)
            except SampleError as err:
                report.add(name, key, err.kind, err.detail)
                continue
            report.clips += 1
            report.images += len(clip)
            images += len(clip)
            _check_labels(report, name, key, clip.meta.get("images", []))
            if values:
                for i, (rgba, udp) in enumerate(zip(clip.rgba, clip.udp)):
                    if udp is not None:
                        for kind, msg in check_udp_values(rgba, udp, alpha_tolerance):
                            report.add(name, key, kind, f"image {i:02d}: {msg}")
            prefix = name.split("-")[0]
            if clip.split != prefix:
                report.add(name, key, "split-leak", f"clip marked {clip.split!r} sits in a {prefix} shard")
            if has_manifests:
                _check_clip_row(report, name, clip, clips_by_key.get(key), char_split)
        for shard_name, _, kind, msg in stats.problems:
            report.add(shard_name, "", kind, msg)
        if has_manifests and row is not None:
            expected = sorted(k for k, r in clips_by_key.items() if r["shard"] == name)
            missing = sorted(set(expected) - set(in_shard))
            for key in missing:
                report.add(name, key, "manifest", "clip listed in clips.parquet is not in the shard")
            if row["clips"] != len(in_shard):
                report.add(
                    name,
                    "",
                    "manifest",
                    f"shards.parquet says {row['clips']} clips, shard has {len(in_shard)}",
                )
            if not stats.problems and row.get("images") is not None and row["images"] != images:
                report.add(
                    name, "", "manifest", f"shards.parquet says {row['images']} images, shard has {images}"
                )
    if report.images_without_joints:
        report.warnings.append(
            f"{report.images_without_joints} labelled image(s) carry no joints/keypoints "
            "(written before skeleton labels were recorded; rerun synth to add them)")
    if has_manifests:
        for key, r in clips_by_key.items():
            if r["shard"] not in on_disk and r["shard"] not in listed:
                report.add(r["shard"], key, "manifest", "clip's shard is in no manifest and not on disk")
        for cid, splits in sorted(character_leaks(list(clips_by_key.values()), characters).items()):
            report.add(MANIFEST_DIR, cid, "split-leak", f"character is in both splits {sorted(splits)}")
    return report


def _dataset_max_torn(root: Path) -> float:
    """The label gate the dataset was synthesized with (dataset.json), else synth's default."""
    try:
        value = read_dataset_info(root).get("metadata", {}).get("synth", {}).get("max_torn")
    except FormatError:
        value = None
    return float(value) if isinstance(value, int | float) else DEFAULT_MAX_TORN


def _check_labels(report: ValidationReport, shard: str, key: str, images: list) -> None:
    for i, im in enumerate(images):
        if not isinstance(im, dict):
            continue
        if im.get("udp") and not ("joints" in im and "keypoints" in im):
            report.images_without_joints += 1
        for msg in check_image_labels(im):
            report.add(shard, key, "bad-labels", f"image {i:02d}: {msg}")
        share = im.get("torn_share")
        if isinstance(share, int | float) and not isinstance(share, bool):
            report.torn_shares.append(float(share))


def _check_clip_row(report: ValidationReport, shard: str, clip, row: dict | None, char_split: dict) -> None:
    key = clip.key
    if row is None:
        report.add(shard, key, "manifest", "clip is not in clips.parquet")
        return
    problems = []
    if row["shard"] != shard:
        problems.append(f"clips.parquet puts it in {row['shard']}")
    if row["n_images"] != len(clip):
        problems.append(f"clips.parquet says {row['n_images']} images, sample has {len(clip)}")
    if row["labelled"] != clip.labelled:
        problems.append(f"clips.parquet says labelled={row['labelled']}")
    if row["character"] != clip.character_id:
        problems.append(f"clips.parquet says character {row['character']!r}")
    if row["split"] != clip.split:
        problems.append(f"clips.parquet says split {row['split']!r}, KEY.json {clip.split!r}")
    if clip.character_id not in char_split:
        problems.append("character is not in characters.parquet")
    if row.get("torn_share_max") is not None:
        expected = label_columns(clip.meta)["torn_share_max"]
        if expected is None or abs(expected - row["torn_share_max"]) > 1e-9:
            problems.append(f"clips.parquet says torn_share_max {row['torn_share_max']}, KEY.json {expected}")
    for p in problems:
        report.add(shard, key, "manifest", p)


def report_json(report: ValidationReport) -> str:
    return json.dumps(
        {
            "ok": report.ok,
            "shards": report.shards,
            "clips": report.clips,
            "images": report.images,
            "problems": [p.__dict__ for p in report.problems],
            "kinds": dict(report.kinds()),
            "warnings": report.warnings,
            "images_without_joints": report.images_without_joints,
            "torn_share": report.torn_summary(),
        },
        indent=1,
    )
