"""Per-image skeleton labels, and the measure of UDP pixels that disagree with the skeleton.

Arrays in, arrays out; :func:`skeleton_spec` reads a rig once, the rest runs per image.

Frames: joints are world metres (the frame of the camera record); keypoints are pixels in
the camera's image frame (:mod:`conrdata.render.camera`: u right, v down, origin at the
top-left corner, pixel centres at +0.5). The UDP decodes to A-pose (bind) world metres
with the docs/design.md encoding and the character's A-pose height H.

Skeleton segments
-----------------
The humanoid bones of the rig form segments, except ``leftEye``, ``rightEye`` and ``jaw`` (points
in the head) and the fingers (the hand's segment covers them): one segment from each bone's
nearest humanoid ancestor's head to its own head (``hips > spine``, ``hips > leftUpperLeg``,
``leftUpperArm > leftLowerArm``, ...), and for every bone with no humanoid child (head, hands,
toes, or feet when a rig has no toes) a *terminal* segment ``bone > end`` that continues the
bone's own direction (from its humanoid parent to it) as far as the vertices it carries reach.
A terminal segment is carried rigidly by its bone's posed rotation.

Torn labels
-----------
A foreground UDP pixel names an A-pose surface point p, at distance d from its nearest bind
segment. Its candidate segments are every s with bind distance d_s <= 1.5 d + margin x H (a point
between two bones in the bind pose may follow either, and a part far from every bone, such as a
backpack, is carried by one of several about as far). In the posed image the pixel's camera ray
passes through the posed surface point; if the mesh followed the skeleton, that point lies about
d_s from the posed segment s, so the ray passes within d_s of it. The pixel *disagrees* when its
ray passes farther than ``d_s + margin x H`` from every candidate posed segment s, and farther than
``margin x H`` from every skin blend of two candidates: the segment between p carried rigidly by the
one's bone and by the other's, which is where linear blend skinning puts a vertex weighted between
them (a skirt stretched between two spread legs). A correct render
scores ~0 (only pixels at strongly bent joints and stretched skin can exceed the margin); a part
left at bind while its bone moves scores its whole visible area. The share of disagreeing
foreground pixels is the image's ``torn_share``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from conrdata.rig.humanoid import HUMANOID_BONES
from conrdata.rig.model import Rig

#: COCO-17 body keypoint names in COCO order ("left" is the character's own left, +X in the A-pose).
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
#: COCO body keypoints that are humanoid bone heads.
COCO17_FROM_BONES: dict[str, str] = {
    "left_shoulder": "leftUpperArm", "right_shoulder": "rightUpperArm",
    "left_elbow": "leftLowerArm", "right_elbow": "rightLowerArm",
    "left_wrist": "leftHand", "right_wrist": "rightHand",
    "left_hip": "leftUpperLeg", "right_hip": "rightUpperLeg",
    "left_knee": "leftLowerLeg", "right_knee": "rightLowerLeg",
    "left_ankle": "leftFoot", "right_ankle": "rightFoot",
}
#: COCO keypoints on the face, placed from the eye bones or the head mesh (see :func:`skeleton_spec`).
FACE_POINTS: tuple[str, ...] = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")

DEFAULT_MARGIN = 0.03  # of H: how far past its bind distance a ray may pass a posed segment
# Joints without a segment of their own: eyes and jaw are points in the head, and fingers are
# folded into their hand's terminal segment (a tenth of the segments' cost for a few pixels).
_POINT_BONES = ("leftEye", "rightEye", "jaw") + tuple(
    n for n in HUMANOID_BONES if any(f in n for f in ("Thumb", "Index", "Middle", "Ring", "Little")))
_RELATIVE_SLACK = 0.5  # candidates: segments within (1 + this) x the nearest one's distance, + margin
_CHUNK = 16384  # pixels per block in torn_share (bounds memory at large resolutions)
_MAX_CANDIDATES = 6  # nearest bind segments a pixel is tested against (more are as good as never near)


@dataclass
class SkeletonSpec:
    """What a rig's labels need, computed once per character.

    - ``names`` J humanoid names present in the rig (vocabulary order); ``bones`` (J,) rig indices.
    - ``tolerance`` (J,) metres: how far behind the rendered surface a joint may lie and still be
      visible (its bind cross-section radius plus 1 % of H).
    - segments, S of them: ``seg_names``; ``seg_bone`` (S,) the rig bone carrying the start;
      ``seg_end_bone`` (S,) the rig bone whose head ends it, or -1 for a terminal segment whose end
      is ``seg_end_offset`` (S, 3) from the carrying bone's head in its bind frame;
      ``bind_a``/``bind_b`` (S, 3) bind end points, metres.
    - face points (:data:`FACE_POINTS`): ``face_bone`` (5,) carrying rig bone, ``face_offset``
      (5, 3) bind offset from that bone's head; ``face_source`` says how they were placed.
    - ``height`` H, metres.
    """

    names: list[str]
    bones: np.ndarray
    tolerance: np.ndarray
    seg_names: list[str]
    seg_bone: np.ndarray
    seg_end_bone: np.ndarray
    seg_end_offset: np.ndarray
    bind_a: np.ndarray
    bind_b: np.ndarray
    face_bone: np.ndarray
    face_offset: np.ndarray
    face_source: str
    height: float


def _humanoid_parents(rig: Rig, present: dict[str, int]) -> dict[str, str | None]:
    by_bone = {b: n for n, b in present.items()}
    out: dict[str, str | None] = {}
    for name, b in present.items():
        p = int(rig.bone_parents[b])
        while p >= 0 and p not in by_bone:
            p = int(rig.bone_parents[p])
        out[name] = by_bone.get(p)
    return out


def _vertex_owners(rig: Rig, owner_of_bone: np.ndarray) -> np.ndarray:
    """(V,) the humanoid-owner rig bone of each vertex's dominant bone (-1: none)."""
    dominant = rig.joints[np.arange(len(rig.joints)), np.argmax(rig.weights, axis=1)]
    return owner_of_bone[dominant]


def skeleton_spec(rig: Rig, margin_fraction: float = 0.01) -> SkeletonSpec:
    """Segments, joint tolerances and face points of a rig in its bind (A-pose)."""
    H = rig.height()
    heads = rig.bone_heads.astype(np.float64)
    verts = rig.vertices.astype(np.float64)
    present = {n: int(rig.humanoid[n]) for n in HUMANOID_BONES if n in rig.humanoid}
    parents = _humanoid_parents(rig, present)
    seg_set = {n: b for n, b in present.items() if n not in _POINT_BONES}
    # Every rig bone's humanoid owner: the nearest segment bone at or above it (eyes and jaw go to the head).
    owner_of_bone = np.full(rig.num_bones, -1, np.int64)
    seg_bones = set(seg_set.values())
    for b in range(rig.num_bones):
        p = int(rig.bone_parents[b])
        owner_of_bone[b] = b if b in seg_bones else (owner_of_bone[p] if p >= 0 else -1)
    owners = _vertex_owners(rig, owner_of_bone)

    seg_names, seg_bone, seg_end_bone, seg_end_offset = [], [], [], []
    has_child = {parents[n] for n in seg_set if parents[n] in seg_set}
    for name, b in seg_set.items():
        parent = parents[name]
        if parent in seg_set:
            seg_names.append(f"{parent}>{name}")
            seg_bone.append(seg_set[parent])
            seg_end_bone.append(b)
            seg_end_offset.append(np.zeros(3))
        if name not in has_child and parent in seg_set:
            direction = heads[b] - heads[seg_set[parent]]
            norm = np.linalg.norm(direction)
            mine = verts[owners == b]
            if norm > 1e-9 and len(mine):
                direction = direction / norm
                reach = float(np.max((mine - heads[b]) @ direction))
                if reach > 1e-6:
                    seg_names.append(f"{name}>end")
                    seg_bone.append(b)
                    seg_end_bone.append(-1)
                    seg_end_offset.append(direction * reach)
    seg_bone_a = np.asarray(seg_bone, np.int64).reshape(-1)
    seg_end_b = np.asarray(seg_end_bone, np.int64).reshape(-1)
    offsets = np.asarray(seg_end_offset, np.float64).reshape(-1, 3)
    bind_a = heads[seg_bone_a] if len(seg_bone_a) else np.zeros((0, 3))
    bind_b = np.where((seg_end_b >= 0)[:, None], heads[np.maximum(seg_end_b, 0)], bind_a + offsets) \
        if len(seg_bone_a) else np.zeros((0, 3))

    names = list(present)
    bones = np.array([present[n] for n in names], np.int64)
    tolerance = np.array([_joint_radius(rig, n, present, parents, owners, owner_of_bone, verts, heads)
                          for n in names], np.float64) + margin_fraction * H
    face_bone, face_offset, face_source = _face_points(rig, present, owners, verts, heads)
    return SkeletonSpec(names, bones, tolerance, seg_names, seg_bone_a, seg_end_b, offsets, bind_a, bind_b,
                        face_bone, face_offset, face_source, H)


def _joint_radius(rig, name, present, parents, owners, owner_of_bone, verts, heads) -> float:
    """The 90th-percentile distance from a joint to the surface vertices of a thin slab around it
    (perpendicular to the bone's direction, +-2 % of H), carried by the bone or its humanoid parent:
    how deep inside the body the joint can sit below the surface a camera sees."""
    H = rig.height()
    b = present[name]
    parent = parents.get(name)
    carriers = {int(owner_of_bone[b])}
    if parent is not None:
        carriers.add(int(owner_of_bone[present[parent]]))
        axis = heads[b] - heads[present[parent]]
    else:
        axis = np.array([0.0, 1.0, 0.0])
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    rel = verts[np.isin(owners, list(carriers))] - heads[b]
    slab = rel[np.abs(rel @ axis) < 0.02 * H]
    if len(slab) < 3:
        return 0.05 * H
    return float(np.percentile(np.linalg.norm(slab, axis=1), 90))


def _face_points(rig: Rig, present, owners, verts, heads) -> tuple[np.ndarray, np.ndarray, str]:
    """Bind positions of nose, eyes and ears as (carrying bone, offset from its head).

    Eyes: on the front surface of the head mesh in front of the ``leftEye``/``rightEye`` bone heads
    when the rig has both; else at 45 % of the way from the head bone to the top of the head, 20 %
    of the head's width either side of its centre. Nose: between the eyes, 30 % of the eye distance
    lower, on the front surface of the head mesh. Ears: at eye height, at the lateral extremes of
    the head mesh there (hair included), at the depth of the head bone. All are carried by the head
    bone (an eye's own rotation is gaze, not a move of the eye).
    """
    head_b = present.get("head")
    if head_b is None:
        return np.full(5, -1, np.int64), np.zeros((5, 3)), "none"
    head = heads[head_b]
    mine = verts[(owners == head_b) & (verts[:, 1] >= head[1])]
    if len(mine) < 8:
        mine = np.vstack([mine, head[None]]) if len(mine) else head[None]
    H = rig.height()

    def front(x: float, y: float, half: float) -> float:
        """The front (largest z) of the head mesh around (x, y), widening the window until it holds
        a vertex (coarse meshes have few)."""
        while True:
            near = mine[(np.abs(mine[:, 0] - x) < half) & (np.abs(mine[:, 1] - y) < half)]
            if len(near) or half > H:
                return float(near[:, 2].max()) if len(near) else float(mine[:, 2].max())
            half *= 2

    if "leftEye" in present and "rightEye" in present:
        # Eye bones sit at the eyeball's centre of rotation, often centimetres behind the face:
        # the keypoint is the front of the head mesh in front of each.
        left, right = heads[present["leftEye"]].copy(), heads[present["rightEye"]].copy()
        half = max(0.2 * float(np.linalg.norm(left - right)), 0.004 * H)
        left[2], right[2] = front(left[0], left[1], half), front(right[0], right[1], half)
        source = "eye bones"
    else:
        top = float(mine[:, 1].max())
        eye_y = head[1] + 0.45 * (top - head[1])
        width = float(np.ptp(mine[:, 0])) or 0.1 * H
        cx = float(mine[:, 0].min() + mine[:, 0].max()) / 2
        half = max(0.05 * width, 0.004 * H)
        left = np.array([cx + 0.2 * width, eye_y, front(cx + 0.2 * width, eye_y, half)])
        right = np.array([cx - 0.2 * width, eye_y, front(cx - 0.2 * width, eye_y, half)])
        source = "head mesh"
    eye_dist = max(float(np.linalg.norm(left - right)), 0.01 * H)
    mid = (left + right) / 2
    nose_y = mid[1] - 0.3 * eye_dist
    nose = np.array([mid[0], nose_y, front(mid[0], nose_y, 0.25 * eye_dist)])
    band = mine[np.abs(mine[:, 1] - mid[1]) < 0.3 * eye_dist]
    if len(band) == 0:
        band = mine
    left_ear = np.array([band[:, 0].max(), mid[1], head[2]])
    right_ear = np.array([band[:, 0].min(), mid[1], head[2]])
    bones = np.full(5, head_b, np.int64)
    points = np.stack([nose, left, right, left_ear, right_ear])
    return bones, points - heads[bones], source


# --- per image -----------------------------------------------------------------------------------


def posed_segments(spec: SkeletonSpec, world_r: np.ndarray,
                   world_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posed segment end points (S, 3), (S, 3) from posed bone rotations (B, 3, 3) and heads (B, 3)."""
    a = world_t[spec.seg_bone]
    carried = a + np.einsum("sij,sj->si", world_r[spec.seg_bone], spec.seg_end_offset)
    b = np.where((spec.seg_end_bone >= 0)[:, None], world_t[np.maximum(spec.seg_end_bone, 0)], carried)
    return a, b


def project_visible(points: np.ndarray, tolerance: np.ndarray, camera, depth: np.ndarray | None):
    """Image coordinates (N, 2) of world points (N, 3) and whether each is visible (N,) bool.

    Visible: inside the image, in front of the camera, and either over the background (nothing in
    front of it) or at most ``tolerance`` (N,) metres behind the rendered eye depth (H, W) at its
    pixel. Without a depth image, visible means inside the image and in front of the camera.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    uv, eye_depth = camera.project(points)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    inside &= eye_depth > 0
    visible = inside.copy()
    if depth is not None and inside.any():
        col = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, camera.width - 1)
        row = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, camera.height - 1)
        surface = depth[row, col].astype(np.float64)
        visible &= (surface <= 0) | (eye_depth <= surface + np.asarray(tolerance, np.float64))
    return uv, visible


def skeleton_keypoints(spec: SkeletonSpec, world_t: np.ndarray, camera, depth: np.ndarray | None):
    """Posed joints (J, 3) world metres, keypoints (J, 2) pixels and visibility (J,) of ``spec.names``."""
    joints = np.asarray(world_t, np.float64)[spec.bones]
    uv, visible = project_visible(joints, spec.tolerance, camera, depth)
    return joints, uv, visible


def coco17_keypoints(spec: SkeletonSpec, world_r: np.ndarray, world_t: np.ndarray, camera,
                     depth: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO-17 points in :data:`COCO17_NAMES` order: world (17, 3), pixels (17, 2), visible (17,) bool,
    and present (17,) bool (False where the rig lacks the bone; such points are NaN)."""
    index = {n: j for j, n in enumerate(spec.names)}
    world = np.full((17, 3), np.nan)
    tol = np.full(17, 0.04 * spec.height)  # face points lie on the surface of a ~15 cm head
    for k, name in enumerate(COCO17_NAMES):
        bone = COCO17_FROM_BONES.get(name)
        if bone is not None and bone in index:
            world[k] = world_t[spec.bones[index[bone]]]
            tol[k] = spec.tolerance[index[bone]]
    for f, name in enumerate(FACE_POINTS):
        b = spec.face_bone[f]
        if b >= 0:
            world[COCO17_NAMES.index(name)] = world_t[b] + world_r[b] @ spec.face_offset[f]
    present = np.isfinite(world).all(axis=1)
    uv = np.full((17, 2), np.nan)
    visible = np.zeros(17, bool)
    if present.any():
        uv[present], visible[present] = project_visible(world[present], tol[present], camera, depth)
    return world, uv, visible & present


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (N, S) from points (N, 3) to segments a, b (S, 3), by matrix products (no (N, S, 3))."""
    ab = b - a
    ab2 = np.maximum(np.einsum("sk,sk->s", ab, ab), 1e-18)
    p_ab = p @ ab.T - np.einsum("sk,sk->s", a, ab)  # (p - a) . ab
    t = np.clip(p_ab / ab2, 0.0, 1.0)
    pa2 = np.einsum("nk,nk->n", p, p)[:, None] - 2 * (p @ a.T) + np.einsum("sk,sk->s", a, a)  # |p - a|^2
    return np.sqrt(np.maximum(pa2 - 2 * t * p_ab + t * t * ab2, 0.0))


def _follows_a_blend(pos: np.ndarray, origin: np.ndarray, direction: np.ndarray, seg: np.ndarray,
                     candidate: np.ndarray, bind_a: np.ndarray, posed_a: np.ndarray, posed_r: np.ndarray,
                     slack: float) -> np.ndarray:
    """(N,) bool: the pixel's ray passes within ``slack`` of a linear skin blend of two of its candidate
    segments, i.e. of the segment between the A-pose point p carried rigidly by one candidate's bone and
    by the other's (where linear blend skinning puts a vertex weighted between them)."""
    # Rigidly carried copies of p, one per candidate: posed_a[s] + R_s (p - bind_a[s]), shape (N, K, 3).
    carried = posed_a[seg] + np.einsum("nkij,nkj->nki", posed_r[seg], pos[:, None, :] - bind_a[seg])
    i, j = np.triu_indices(seg.shape[1], 1)
    d = _ray_segments_distance(origin, direction, carried[:, i], carried[:, j])
    return np.any(candidate[:, i] & candidate[:, j] & (d <= slack), axis=1)


def _ray_segments_distance(origin: np.ndarray, direction: np.ndarray, a: np.ndarray,
                           b: np.ndarray) -> np.ndarray:
    """Distances (N, K) between lines (origin, unit direction) (N, 3) and segments a, b (N, K, 3)."""

    def perp(w):  # (N, K, 3): the part of w perpendicular to each line
        return w - np.einsum("nsk,nk->ns", w, direction)[..., None] * direction[:, None, :]

    u = perp(a - origin[:, None, :])
    v = perp(b - a)
    t = np.clip(-np.einsum("nsk,nsk->ns", u, v) / np.maximum(np.einsum("nsk,nsk->ns", v, v), 1e-18), 0.0, 1.0)
    return np.linalg.norm(u + t[..., None] * v, axis=-1)


def decode_udp_positions(udp: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Foreground pixels of a UDP (H, W, 4): their (row, col) (N, 2) and A-pose positions (N, 3) metres."""
    rows, cols = np.nonzero(udp[..., 3] > 0)
    xyz = udp[rows, cols, :3].astype(np.float64)
    pos = np.stack([(xyz[:, 0] - 0.5) * height, xyz[:, 1] * height, (xyz[:, 2] - 0.5) * height], axis=1)
    return np.stack([rows, cols], axis=1), pos


def torn_share(udp: np.ndarray, camera, height: float, bind_a: np.ndarray, bind_b: np.ndarray,
               posed_a: np.ndarray, posed_b: np.ndarray, margin: float = DEFAULT_MARGIN,
               return_mask: bool = False, max_pixels: int = 8192, posed_r: np.ndarray | None = None):
    """Share in [0, 1] of foreground UDP pixels that disagree with the skeleton (module docstring).

    ``udp`` (H, W, 4) float32 as rendered with ``camera``; ``height`` H metres; segments as bind
    (S, 3) x 2 and posed (S, 3) x 2 end points; ``margin`` a fraction of H. With ``return_mask``
    also returns the (H, W) bool image of disagreeing pixels. No foreground or no segment: 0.
    Above ``max_pixels`` foreground pixels the share is estimated on the pixels of every
    ``stride``-th row and column (the smallest stride that brings the count under the limit; the
    mask then marks only those). ``posed_r`` (S, 3, 3), the posed rotation of the bone carrying each
    segment, also accepts a pixel whose ray passes within the margin of a skin blend of two candidate
    segments (module docstring).
    """
    mask = np.zeros(udp.shape[:2], bool)
    foreground = udp[..., 3] > 0
    stride, count = 1, int(np.count_nonzero(foreground))
    if count > max_pixels:
        stride = math.ceil(math.sqrt(count / max_pixels))
        while np.count_nonzero(foreground[::stride, ::stride]) > max_pixels:
            stride += 1
    # Decoding only every stride-th row and column gives the same pixels, in the same order, as
    # decoding all and keeping those.
    pix, pos = decode_udp_positions(udp[::stride, ::stride], height)
    pix *= stride
    if len(pos) == 0 or len(bind_a) == 0:
        return (0.0, mask) if return_mask else 0.0
    bind_a, bind_b = np.asarray(bind_a, np.float64), np.asarray(bind_b, np.float64)
    posed_a, posed_b = np.asarray(posed_a, np.float64), np.asarray(posed_b, np.float64)
    slack = margin * height
    torn = np.zeros(len(pos), bool)
    for start in range(0, len(pos), _CHUNK):
        sl = slice(start, start + _CHUNK)
        all_d = _point_segment_distance(pos[sl], bind_a, bind_b)
        # Candidates: the nearest segment and every one nearly as near (a point between two
        # segments in the bind pose may follow either), among the K nearest.
        k = min(_MAX_CANDIDATES, all_d.shape[1])
        seg = np.argpartition(all_d, k - 1, axis=1)[:, :k] if k < all_d.shape[1] else \
            np.broadcast_to(np.arange(k), all_d.shape)
        bind_d = np.take_along_axis(all_d, seg, axis=1)
        candidate = bind_d <= all_d.min(axis=1, keepdims=True) * (1 + _RELATIVE_SLACK) + slack
        uv = pix[sl][:, ::-1] + 0.5
        near = camera.unproject(uv, np.ones(len(uv)))
        far = camera.unproject(uv, np.full(len(uv), 2.0))
        direction = far - near
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        ray_d = _ray_segments_distance(near, direction, posed_a[seg], posed_b[seg])
        agree = np.any(candidate & (ray_d <= bind_d + slack), axis=1)
        if posed_r is not None and k > 1:
            # The blend test only for the pixels that no single segment explains (per pixel, so the
            # result is that of testing all of them).
            rest = np.flatnonzero(~agree)
            if len(rest):
                agree[rest] = _follows_a_blend(pos[sl][rest], near[rest], direction[rest], seg[rest],
                                               candidate[rest], bind_a, posed_a,
                                               np.asarray(posed_r, np.float64), slack)
        torn[sl] = ~agree
    mask[pix[:, 0], pix[:, 1]] = torn
    share = float(torn.mean())
    return (share, mask) if return_mask else share


def image_labels(spec: SkeletonSpec, world_r: np.ndarray, world_t: np.ndarray, camera, udp: np.ndarray,
                 depth: np.ndarray | None, margin: float = DEFAULT_MARGIN) -> dict:
    """The label fields of one rendered image's JSON entry: ``joints``, ``keypoints``, ``coco17``
    (name -> [u, v, visible]; absent names are left out) and ``torn_share``."""
    joints, uv, visible = skeleton_keypoints(spec, world_t, camera, depth)
    _, cuv, cvis = coco17_keypoints(spec, world_r, world_t, camera, depth)
    posed_a, posed_b = posed_segments(spec, world_r, world_t)
    share = torn_share(udp, camera, spec.height, spec.bind_a, spec.bind_b, posed_a, posed_b, margin,
                       posed_r=world_r[spec.seg_bone])
    return {
        "joints": {n: [round(float(c), 6) for c in joints[j]] for j, n in enumerate(spec.names)},
        "keypoints": {n: [round(float(uv[j, 0]), 3), round(float(uv[j, 1]), 3), int(visible[j])]
                      for j, n in enumerate(spec.names)},
        "coco17": {n: [round(float(cuv[k, 0]), 3), round(float(cuv[k, 1]), 3), int(cvis[k])]
                   for k, n in enumerate(COCO17_NAMES) if not math.isnan(cuv[k, 0])},
        "torn_share": round(share, 6),
    }
