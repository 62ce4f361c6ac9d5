"""The synthesis job: characters -> poses -> views -> one raster pass -> clips in shards.

Shape of the job (img2dataset style: a reader makes tasks, workers render, one writer writes):

- **Tasks.** For each character (sorted by id) the job takes ``P`` poses (seeded samples
  from :func:`conrdata.poses.sample_poses`, or ``P`` distinct poses drawn from a pose
  library) and renders each pose from ``V`` random views. Images are grouped into clips of
  up to ``K`` images of one character with distinct poses: clip ``v{VV}-p{NNNN}`` holds
  poses ``NNNN .. NNNN+K-1``, each seen from its own view number ``VV``. One task = one clip.
- **Seeds.** Every random choice is derived from the job seed and names, never from the
  order of execution: the poses of a character from (seed, character id), the camera of an
  image from (seed, character id, pose index, view index). So the output does not depend on
  the number of workers, the engine, or on which clips a resumed run still has to do.
- **Workers** (:func:`render_clip`) keep one :class:`~conrdata.render.gl_rasterizer.GLRasterizer`
  per process, a small cache of loaded characters and their poses, and a byte-bounded cache of
  posed meshes (the views of one pose, in clips v00, v01, ..., pose it once). Inside a worker the
  GL thread skins in the vertex shader and draws the next view while a small thread pool labels and
  encodes the previous ones (:mod:`conrdata.synth.pipeline`), with one BLAS thread; in this process
  (one worker) the next clip starts before the last one's images are collected
  (:func:`start_clip`), and the writer's appends run on a thread of their own. ``overlap=False``,
  ``gpu_skinning=False`` and ``reuse_poses=False`` give the sequential, numpy-skinned reference
  path of before; every switch writes the same bytes.
- **Writer.** Workers also encode their clip (PNG, compressed UDP) for the character's split, so
  the one :class:`conrdata.dataset.DatasetWriter` only appends bytes (``write_encoded``) and
  results cross process boundaries compressed. Results come back in task order; a rerun skips
  clips already in finished shards. Same inputs and seed -> byte-identical shards.
- **Labels.** Every image's JSON entry records the posed skeleton (``joints``, ``keypoints``,
  ``coco17``) and its ``torn_share``: the share of foreground UDP pixels that disagree with the
  skeleton (:mod:`conrdata.render.labels`). An image above ``max_torn`` is not written: it is
  dropped from its clip (the rest of the clip, still distinct poses, is written; a clip left with
  no image is not), and counted per character with the reason in the report and the summary.
- **Bad input** never stops the job: a mesh that fails to convert or a character that
  fails to load or render is skipped, and the reason goes to the report
  (``OUT/synth_report.json``) and the printed summary.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from conrdata.errors import UserError

REPORT_NAME = "synth_report.json"
PROJECTION_CHOICES = ("perspective", "orthographic", "mixed")
# Config fields that change what a clip contains: a rerun into the same OUT must keep them.
_CONTENT_FIELDS = ("poses_per_character", "views", "resolution", "seed", "images_per_clip", "projection",
                   "yaw_range", "pitch_range", "yfov_range", "margin", "cel", "outline", "outline_width",
                   "poses_path", "max_torn")


@dataclass
class SynthConfig:
    """What to render. Angles in degrees; ``margin`` is the fraction of the half-image kept free
    around the character; ``outline_width`` is a fraction of the character's height; ``max_torn``
    the largest share of disagreeing UDP pixels an image may have and still be written."""

    poses_per_character: int = 16
    views: int = 4
    resolution: int = 512
    seed: int = 0
    images_per_clip: int = 4
    projection: str = "perspective"
    yaw_range: tuple[float, float] = (0.0, 360.0)
    pitch_range: tuple[float, float] = (-10.0, 30.0)
    yfov_range: tuple[float, float] = (20.0, 40.0)
    margin: float = 0.08
    cel: bool = True
    outline: bool = True
    outline_width: float = 0.003
    poses_path: str | None = None
    max_shard_bytes: int = 1 << 30
    max_shard_clips: int = 1000
    max_torn: float = 0.02
    # How a worker runs, not what it makes (left out of content()): label and encode each image on a
    # thread pool while the next renders, with one BLAS thread (False: the sequential path,
    # synchronous read-back); skin in the vertex shader (False: the numpy reference); encoder threads
    # per worker (0: the default of conrdata.synth.pipeline); pose each pose once for all its views
    # (False: once per image, as before).
    overlap: bool = True
    gpu_skinning: bool = True
    encode_threads: int = 0
    reuse_poses: bool = True

    def __post_init__(self) -> None:
        if self.poses_per_character < 1 or self.views < 1 or self.images_per_clip < 1:
            raise UserError("poses per character, views and images per clip must all be >= 1")
        if not 0.0 <= self.max_torn <= 1.0:
            raise UserError(f"max torn share must be in [0, 1], got {self.max_torn}")
        if self.resolution < 8 or self.resolution > 8192:
            raise UserError(f"resolution must be in 8..8192, got {self.resolution}")
        if self.projection not in PROJECTION_CHOICES:
            raise UserError(f"projection must be one of {', '.join(PROJECTION_CHOICES)}")
        self.yaw_range = tuple(map(float, self.yaw_range))
        self.pitch_range = tuple(map(float, self.pitch_range))
        self.yfov_range = tuple(map(float, self.yfov_range))

    def content(self) -> dict:
        d = asdict(self)
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in _CONTENT_FIELDS}

    def shading(self):
        from conrdata.render.scene import Shading

        return Shading(cel=self.cel, outline=self.outline, outline_width=self.outline_width)


def derive_seed(*parts) -> int:
    """A 63-bit seed from names and numbers (stable across runs, platforms and processes)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class ClipTask:
    """One clip to render: poses ``pose_indices`` (into the character's pose set) from view ``view``."""

    character_id: str
    character_path: str
    clip_id: str
    pose_indices: tuple[int, ...]
    view: int
    config: SynthConfig
    split: str = "train"
    udp_codec: str = "zlib"


@dataclass
class ClipOutcome:
    """What a worker sends back: the clip encoded for the writer (``(key, tar members, record)``,
    from :func:`conrdata.dataset.writer.encode_clip`: encoding happens in the workers, so the
    single writer only appends bytes), or the reason it could not be made. ``refused``: the
    images left out because their labels disagree with the skeleton ({pose_index, pose_id,
    torn_share}); ``encoded`` is None when every image was refused."""

    task: ClipTask
    encoded: tuple | None = None
    info: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    refused: list[dict] = field(default_factory=list)


@dataclass
class SynthReport:
    characters: int = 0
    clips_written: int = 0
    images_written: int = 0
    clips_already_done: int = 0
    skipped: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    images_refused: int = 0
    torn: dict = field(default_factory=dict)
    seconds: float = 0.0
    render_seconds: float = 0.0
    engine: str = ""
    workers: int = 1

    @property
    def images_per_second(self) -> float:
        return self.images_written / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["images_per_second"] = round(self.images_per_second, 3)
        return d

    def summary(self) -> str:
        lines = [
            f"synthesized {self.images_written} images in {self.clips_written} clips of {self.characters} "
            f"characters in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s, "
            f"engine {self.engine}, {self.workers} worker{'s' if self.workers != 1 else ''})",
        ]
        if self.clips_already_done:
            lines.append(f"{self.clips_already_done} clips were already in the output (resumed)")
        if self.torn.get("images"):
            t = self.torn
            lines.append(f"labels: torn share of written images mean {100 * t['mean']:.2f} %, "
                         f"max {100 * t['max']:.2f} %")
        if self.refused:
            lines.append(f"refused {self.images_refused} image(s) whose UDP disagrees with the skeleton:")
            for r in self.refused:
                lines.append(f"  {r['item']}: {r['images']} image(s): {r['reason']} "
                             f"(worst {100 * r['worst']:.1f} %)")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} item(s):")
            for s in self.skipped:
                clips = f" ({s['clips']} clips)" if s.get("clips") else ""
                lines.append(f"  {s['item']}: {s['reason']}{clips}")
        return "\n".join(lines)


# --- tasks ---------------------------------------------------------------------------------------


def clip_plan(num_poses: int, config: SynthConfig) -> list[tuple[str, tuple[int, ...], int]]:
    """(clip id, pose indices, view) for one character with ``num_poses`` poses."""
    k = config.images_per_clip
    plan = []
    for v in range(config.views):
        for start in range(0, num_poses, k):
            plan.append((f"v{v:02d}-p{start:04d}", tuple(range(start, min(start + k, num_poses))), v))
    return plan


def make_tasks(characters: list[tuple[str, Path]], config: SynthConfig, num_poses: int,
               split_for=None, udp_codec: str = "zlib") -> list[ClipTask]:
    """Every clip task, sorted by character id then clip plan; ``split_for(character_id)`` gives
    the split the writer will put the character in (the workers encode for it)."""
    tasks = []
    for cid, path in sorted(characters, key=lambda c: c[0]):
        split = split_for(cid) if split_for else "train"
        for clip_id, poses, view in clip_plan(num_poses, config):
            tasks.append(ClipTask(cid, str(path), clip_id, poses, view, config, split, udp_codec))
    return tasks


# --- worker --------------------------------------------------------------------------------------

_WORKER: dict = {"raster": None, "characters": OrderedDict(), "libraries": {}, "posed": OrderedDict(),
                 "posed_bytes": 0}
_CHARACTER_CACHE = 4
# Posed meshes kept per worker, so the views of one pose (clips v00, v01, ... of the same poses) pose
# the character once. Bounded by the bytes of their per-pose arrays.
POSED_CACHE_BYTES = 256 << 20


def _rasterizer(size: int):
    from conrdata.render.gl_rasterizer import GLRasterizer

    r = _WORKER["raster"]
    if r is None or r.width != size:
        if r is not None:
            r.close()
        r = _WORKER["raster"] = GLRasterizer(size, size)
    return r


def _pose_library(path: str):
    from conrdata.poses import load_pose_library

    key = (path, _file_stamp(path))
    lib = _WORKER["libraries"].get(key)
    if lib is None:
        lib = _WORKER["libraries"][key] = load_pose_library(path)
    return lib


def _file_stamp(path: str) -> tuple[int, int]:
    try:
        st = Path(path).stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def character_poses(rig, character_id: str, config: SynthConfig):
    """The character's pose set: (local rotations (P, B, 4), root translations (P, 3), pose ids)."""
    from conrdata.poses import poses_for_rig, sample_poses

    if config.poses_path:
        lib = _pose_library(config.poses_path)
        rng = np.random.default_rng(derive_seed(config.seed, "pose-choice", character_id))
        count = min(config.poses_per_character, len(lib))
        chosen = rng.choice(len(lib), size=count, replace=False)
    else:
        lib = sample_poses(config.poses_per_character, derive_seed(config.seed, "poses", character_id), rig)
        chosen = np.arange(len(lib))
    local, trans = poses_for_rig(rig, lib, chosen)
    return local, trans, [lib.pose_ids[i] for i in chosen]


def _character(task: ClipTask):
    from conrdata.render.labels import skeleton_spec
    from conrdata.render.scene import bind_landmarks
    from conrdata.rig.io import load_character

    cache: OrderedDict = _WORKER["characters"]
    key = (task.character_id, task.character_path, _file_stamp(task.character_path),
           json.dumps(task.config.content(), sort_keys=True))
    entry = cache.get(key)
    if entry is None:
        rig = load_character(task.character_path)
        local, trans, pose_ids = character_poses(rig, task.character_id, task.config)
        # A fresh GL cache key per load: a character file replaced on disk never meets stale textures.
        _WORKER["loads"] = _WORKER.get("loads", 0) + 1
        mesh_key = f"{task.character_id}#{_WORKER['loads']}"
        entry = cache[key] = (rig, bind_landmarks(rig), local, trans, pose_ids, mesh_key, skeleton_spec(rig))
        while len(cache) > _CHARACTER_CACHE:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return entry


def posed_mesh(rig, landmarks, rotations, translation, config: SynthConfig, key: str, pose_index: int):
    """:func:`conrdata.render.scene.mesh_from_rig` of one pose of a loaded character, through the
    worker's cache of posed meshes (the pose evaluator is a pure function of the pose, so a cached
    mesh is the one posing again would make). ``key`` is the character load's mesh key."""
    from conrdata.render.scene import mesh_from_rig

    cache: OrderedDict = _WORKER["posed"]
    ckey = (key, int(pose_index), bool(config.gpu_skinning))
    entry = cache.get(ckey) if config.reuse_poses else None
    if entry is not None:
        cache.move_to_end(ckey)
        return entry[0]
    mesh = mesh_from_rig(rig, rotations, translation, landmarks=landmarks, key=key,
                         gpu_skinning=config.gpu_skinning)
    size = _posed_bytes(mesh)
    if config.reuse_poses and size <= POSED_CACHE_BYTES:
        cache[ckey] = (mesh, size)
        _WORKER["posed_bytes"] += size
        while _WORKER["posed_bytes"] > POSED_CACHE_BYTES:
            _WORKER["posed_bytes"] -= cache.popitem(last=False)[1][1]
    return mesh


def _posed_bytes(mesh) -> int:
    arrays = [mesh.positions, mesh.normals, mesh.bone_world_r, mesh.bone_world_t,
              None if mesh.skin is None else mesh.skin.matrices]
    return sum(a.nbytes for a in arrays if a is not None)


def render_view(rig, landmarks, rotations, translation, rng, config: SynthConfig, raster, key=None,
                *, pending: bool = False, mesh=None):
    """Pose, frame and render one image. Returns (RenderResult, Camera, view dict, DrawMesh);
    ``pending=True`` returns the :class:`~conrdata.render.gl_rasterizer.PendingRender` in place of the
    result (its read-back not waited for yet). ``mesh``: the pose already posed
    (:func:`posed_mesh`); ``rotations`` and ``translation`` are then not used."""
    from conrdata.render.camera import frame_points, random_view
    from conrdata.render.scene import mesh_from_rig

    if mesh is None:
        mesh = mesh_from_rig(rig, rotations, translation, landmarks=landmarks, key=key,
                             gpu_skinning=config.gpu_skinning)
    view = random_view(rng, config.yaw_range, config.pitch_range, config.yfov_range)
    ortho_draw = float(rng.random())
    projection = config.projection
    if projection == "mixed":
        projection = "orthographic" if ortho_draw < 0.5 else "perspective"
    camera = frame_points(mesh.positions, view["yaw"], view["pitch"], width=config.resolution,
                          height=config.resolution, projection=projection, yfov_deg=view["yfov"],
                          margin=config.margin)
    view["projection"] = projection
    if pending:
        return raster.submit(mesh, camera, config.shading()), camera, view, mesh
    return raster.render(mesh, camera, config.shading()), camera, view, mesh


def render_clip(task: ClipTask) -> ClipOutcome:
    """Worker entry point: render one clip. Never raises; failures come back as ``error``."""
    return start_clip(task).outcome()


def start_clip(task: ClipTask) -> ClipInFlight:
    """Render one clip's views and hand their labels and encoding to the worker's thread pool;
    ``.outcome()`` on the returned object waits for them and gives :func:`render_clip`'s result. An
    engine running tasks in its own process (:class:`~conrdata.synth.engines.InlineEngine`) starts
    the next clip before taking this one's outcome, so the pool's tail of one clip overlaps the
    rendering of the next. Never raises."""
    from conrdata.dataset import ClipImage
    from conrdata.render.labels import image_labels
    from conrdata.synth.pipeline import ImageStage

    start = time.perf_counter()
    cfg = task.config
    if cfg.overlap:
        _limit_blas_threads()
    # With cfg.overlap each image's labels, torn gate and encoding run on the worker's thread pool
    # while the next view renders (otherwise inline); results come back in pose order (same bytes).
    stage = ImageStage(cfg.overlap, task.udp_codec, cfg.encode_threads)
    try:
        rig, landmarks, local, trans, pose_ids, mesh_key, spec = _character(task)
        raster = _rasterizer(cfg.resolution)
        raster.read_with_pbo = cfg.overlap  # the sequential path reads back synchronously, as before

        def finish(p, res, camera, view, mesh):
            labels = image_labels(spec, mesh.bone_world_r, mesh.bone_world_t, camera, res.udp, res.depth)
            if labels["torn_share"] > cfg.max_torn:
                return None, {"pose_index": int(p), "pose_id": pose_ids[p],
                              "torn_share": labels["torn_share"]}
            view.update(pose_index=int(p), view_index=int(task.view))
            return ClipImage(rgba=res.rgba, udp=res.udp, pose_id=pose_ids[p], view=view,
                             camera=camera.to_dict(), source=f"synth:{_source_name(rig, task)}",
                             labels=labels), None

        ahead = None  # one view in flight: the next one is drawn before this one is read back
        for p in [*task.pose_indices, None]:
            queued = None
            if p is not None:
                rng = np.random.default_rng(derive_seed(cfg.seed, "view", task.character_id, p, task.view))
                mesh = posed_mesh(rig, landmarks, local[p], trans[p], cfg, mesh_key, p)
                queued = (p, *render_view(rig, landmarks, None, None, rng, cfg, raster, key=mesh_key,
                                          pending=True, mesh=mesh))
            if ahead is not None:
                q, pending, camera, view, mesh = ahead
                stage.submit(finish, q, pending.result(), camera, view, mesh)
            ahead = queued
        return ClipInFlight(task, start, stage, rig)
    except Exception as err:
        stage.cancel()
        return ClipInFlight(task, start, None, None, _failure(err))


class ClipInFlight:
    """A clip whose views are rendered and whose images may still be labelled and encoded on the
    worker's pool (:func:`start_clip`)."""

    def __init__(self, task: ClipTask, start: float, stage, rig, error: str | None = None):
        self.task, self._start, self._stage, self._rig, self._error = task, start, stage, rig, error

    def outcome(self) -> ClipOutcome:
        """Wait for the clip's images and encode the clip for the writer. Never raises."""
        from conrdata.dataset import Clip

        task, cfg, rig = self.task, self.task.config, self._rig
        if self._error is not None:
            return ClipOutcome(task, None, {}, self._error, time.perf_counter() - self._start)
        try:
            images, refused = self._stage.collect()
            info = _character_info(rig, task)
            if not images:
                return ClipOutcome(task, None, info, None, time.perf_counter() - self._start, refused)
            meta = {"generator": "conrdata synth", "seed": cfg.seed, "resolution": cfg.resolution,
                    "shading": asdict(cfg.shading()), "height_m": round(rig.height(), 6)}
            if refused:
                meta["refused"] = refused
            clip = Clip(task.character_id, task.clip_id, images, meta=meta)
            encoded = self._stage.encode_clip(clip, task.split)
            return ClipOutcome(task, encoded, info, None, time.perf_counter() - self._start, refused)
        except Exception as err:
            return ClipOutcome(task, None, {}, _failure(err), time.perf_counter() - self._start)
        finally:
            self._stage.cancel()

    def cancel(self) -> None:
        """Drop the clip: wait for the images still on the pool, discard them."""
        if self._stage is not None:
            self._stage.cancel()


render_clip.start = start_clip  # what InlineEngine.map uses to overlap one clip's tail with the next


def _failure(err: Exception) -> str:
    """The one-line reason a clip failed: a UserError's message, else the exception and where."""
    if isinstance(err, UserError):
        return str(err)
    where = traceback.extract_tb(err.__traceback__)[-1]
    return f"{type(err).__name__}: {err} (at {Path(where.filename).name}:{where.lineno})"


def _limit_blas_threads() -> None:
    """One BLAS thread in a worker: its small matrix products gain nothing from more, and OpenBLAS's
    spinning threads take CPU from the raster and the encoder pool. Inside :func:`run_synth` the
    limit is scoped to the job; a worker process keeps it for its life."""
    if _WORKER.get("blas_scoped") or _WORKER.get("blas_limited"):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    _WORKER["blas_limited"] = True


def _source_name(rig, task: ClipTask) -> str:
    src = rig.meta.get("source") or rig.meta.get("source_path") or task.character_path
    return Path(str(src)).name


def _character_info(rig, task: ClipTask) -> dict:
    info = {"source": _source_name(rig, task), "height_m": round(rig.height(), 6)}
    for k in ("format", "licence", "sha256"):
        if k in rig.meta:
            v = rig.meta[k]
            info[k] = v if isinstance(v, str | int | float) else json.dumps(v, sort_keys=True, default=str)
    return info


# --- the job -------------------------------------------------------------------------------------


def _count_poses(config: SynthConfig) -> int:
    if config.poses_path:
        from conrdata.poses import load_pose_library

        n = len(load_pose_library(config.poses_path))
        if n == 0:
            raise UserError("pose library holds no poses", config.poses_path)
        return min(config.poses_per_character, n)
    return config.poses_per_character


def run_synth(
    characters: list[tuple[str, Path]],
    out_dir: str | Path,
    config: SynthConfig,
    engine=None,
    *,
    progress: bool = True,
    skipped: list[dict] | None = None,
) -> SynthReport:
    """Render every clip of ``characters`` ((id, character file) pairs) into ``out_dir``.

    ``engine`` is from :func:`conrdata.synth.engines.make_engine` (default: inline). ``skipped``
    are earlier skips (e.g. from conversion) to carry into the report.
    """
    from tqdm import tqdm

    from conrdata.dataset import DatasetWriter, clip_key
    from conrdata.synth.engines import InlineEngine
    from conrdata.synth.pipeline import OrderedWrites

    engine = engine or InlineEngine()
    out_dir = Path(out_dir)
    report = SynthReport(characters=len(characters), skipped=list(skipped or []), engine=engine.name,
                         workers=engine.workers)
    num_poses = _count_poses(config)
    start = time.perf_counter()
    _check_same_config(out_dir, config)
    with DatasetWriter(out_dir, config.max_shard_bytes, config.max_shard_clips, seed=config.seed,
                       metadata={"synth": config.content()}) as writer:
        tasks = []
        for task in make_tasks(characters, config, num_poses, writer.split_for, writer.udp_codec):
            if writer.has_clip(clip_key(task.character_id, task.clip_id)):
                report.clips_already_done += 1
            else:
                tasks.append(task)
        failed: dict[tuple[str, str], dict] = {}
        refused: dict[str, dict] = {}
        shares: list[float] = []
        total = sum(len(t.pose_indices) for t in tasks)
        with tqdm(total=total, unit="img", desc="synth", disable=not progress, dynamic_ncols=True) as bar, \
                _blas_scope(config.overlap), OrderedWrites(inline=not config.overlap) as writes:
            for outcome in engine.map(render_clip, tasks):
                task = outcome.task
                bar.update(len(task.pose_indices))
                if outcome.error is not None:
                    # One entry per character and reason, counting the clips it cost.
                    entry = failed.get((task.character_id, outcome.error))
                    if entry is None:
                        item = f"{task.character_id} ({Path(task.character_path).name})"
                        entry = failed[(task.character_id, outcome.error)] = {
                            "item": item, "reason": outcome.error, "clips": 0}
                        report.skipped.append(entry)
                    entry["clips"] += 1
                    continue
                if outcome.refused:
                    _count_refused(refused, report, task, outcome.refused, config.max_torn)
                report.render_seconds += outcome.seconds
                if outcome.encoded is None:  # every image of the clip was refused
                    continue
                key, members, record = outcome.encoded
                writes.submit(_write_clip, writer, task.character_id, outcome.info, key, members, record)
                report.clips_written += 1
                report.images_written += len(record["images"])
                shares += [im["torn_share"] for im in record["images"] if "torn_share" in im]
    if shares:
        report.torn = {"images": len(shares), "mean": round(float(np.mean(shares)), 6),
                       "max": round(float(np.max(shares)), 6),
                       "over_max": int(sum(v > config.max_torn for v in shares))}
    report.seconds = time.perf_counter() - start
    _write_report(out_dir, config, report)
    return report


def _write_clip(writer, character_id: str, info: dict, key: str, members: list, record: dict) -> None:
    writer.add_character(character_id, info)
    writer.write_encoded(key, members, record)


@contextmanager
def _blas_scope(active: bool = True):
    """One BLAS thread while a job runs in this process (see :func:`_limit_blas_threads`)."""
    from threadpoolctl import threadpool_limits

    if not active:
        yield
        return
    _WORKER["blas_scoped"] = True
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        _WORKER["blas_scoped"] = False


def _count_refused(refused: dict[str, dict], report: SynthReport, task: ClipTask, images: list[dict],
                   max_torn: float) -> None:
    """One report entry per character: images refused by the label gate, and the worst share."""
    entry = refused.get(task.character_id)
    if entry is None:
        entry = refused[task.character_id] = {
            "item": f"{task.character_id} ({Path(task.character_path).name})", "character": task.character_id,
            "reason": f"UDP disagrees with the skeleton on more than {100 * max_torn:.1f} % of the pixels "
                      "(a part left behind by the bone that carries it)",
            "images": 0, "clips_emptied": 0, "worst": 0.0}
        report.refused.append(entry)
    entry["images"] += len(images)
    entry["clips_emptied"] += int(len(images) == len(task.pose_indices))
    entry["worst"] = max(entry["worst"], *(im["torn_share"] for im in images))
    report.images_refused += len(images)


def _check_same_config(out_dir: Path, config: SynthConfig) -> None:
    info_path = out_dir / "manifests" / "dataset.json"
    if not info_path.exists():
        return
    try:
        previous = json.loads(info_path.read_text()).get("metadata", {}).get("synth")
    except (OSError, ValueError):
        return
    current = json.loads(json.dumps(config.content()))
    # A setting the earlier run did not record yet (e.g. max_torn) was not in force then: not a change.
    changed = sorted(k for k in current if previous and k in previous and previous[k] != current[k])
    if changed:
        raise UserError(f"was synthesized with other settings ({', '.join(changed)}); "
                        "use a new output folder", out_dir)


def _write_report(out_dir: Path, config: SynthConfig, report: SynthReport) -> None:
    path = out_dir / REPORT_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"config": asdict(config), "report": report.to_dict()}, indent=2, default=str))
    tmp.replace(path)


def synth_folder(
    meshes_dir: str | Path,
    out_dir: str | Path,
    config: SynthConfig,
    *,
    characters_dir: str | Path | None = None,
    engine_name: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool = True,
    skipped: list[dict] | None = None,
) -> SynthReport:
    """``conrdata synth`` as a function: convert ``meshes_dir`` (converted characters are reused),
    then :func:`run_synth` every character found in the characters folder. ``skipped``: earlier
    skips (e.g. unreadable motion files) to carry into the report."""
    from conrdata.synth.convert import convert_folder, list_characters
    from conrdata.synth.engines import make_engine

    meshes_dir, out_dir = Path(meshes_dir), Path(out_dir)
    if not meshes_dir.is_dir():
        raise UserError("is not a folder of meshes", meshes_dir)
    characters_dir = Path(characters_dir) if characters_dir else out_dir / "characters"
    out_dir.mkdir(parents=True, exist_ok=True)
    conv = convert_folder(meshes_dir, characters_dir, workers=max(1, workers), strict=False,
                          progress=progress)
    skipped = list(skipped or [])
    for item, reason in _convert_skips(conv):
        reason = str(reason)
        if reason.startswith(f"{item}: "):  # convert's reasons already name the file
            reason = reason[len(str(item)) + 2 :]
        skipped.append({"item": str(item), "reason": reason})
    characters = list_characters(characters_dir)
    if not characters:
        raise UserError("no character could be converted: " + "; ".join(s["reason"] for s in skipped[:3]),
                        meshes_dir)
    engine = make_engine(engine_name, workers, address)
    try:
        return run_synth(characters, out_dir, config, engine, progress=progress, skipped=skipped)
    finally:
        engine.close()


def _convert_skips(report) -> list[tuple[str, str]]:
    """(item, reason) pairs from a ConvertReport, whatever its exact field layout."""
    items = getattr(report, "skipped", None) or []
    out = []
    for s in items:
        if isinstance(s, dict):
            out.append((s.get("path") or s.get("item") or s.get("file"), s.get("reason") or s.get("error")))
        elif isinstance(s, tuple | list) and len(s) >= 2:
            out.append((s[0], s[1]))
        else:
            out.append((getattr(s, "path", s), getattr(s, "reason", "")))
    return out
