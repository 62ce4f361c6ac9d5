"""Cameras: perspective and orthographic, OpenGL conventions, plus seeded framing of a posed character.

Frames
------
World: right-handed, +Y up, metres (docs/design.md). A camera's own frame is the
OpenGL one: it looks along its -Z axis, +Y is up and +X is right.
``cam_to_world`` (4 x 4) maps camera-frame points to world points.

Image coordinates: ``(u, v)`` in pixels with u to the right and v DOWN, the
origin at the top-left corner of the image, pixel (row r, column c) covering
``[c, c + 1) x [r, r + 1)``; its centre is ``(c + 0.5, r + 0.5)``. This is the
GL window frame with its rows flipped, so both rasterizers and every image
array agree on "row 0 at the top".

Depth: eye depth in metres, the distance along the viewing axis (``-z`` in the
camera frame), for both projections.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

PROJECTIONS = ("perspective", "orthographic")


@dataclass
class Camera:
    """A pinhole (``perspective``) or parallel (``orthographic``) camera.

    - ``width``, ``height``: image size in pixels.
    - ``yfov``: full vertical field of view in radians (perspective).
    - ``ortho_height``: full visible height in metres (orthographic).
    - ``znear``, ``zfar``: clip planes, metres along the viewing axis.
    - ``cam_to_world``: (4, 4) float64 pose of the camera frame in the world.
    """

    width: int = 512
    height: int = 512
    projection: str = "perspective"
    yfov: float = math.radians(30.0)
    ortho_height: float = 2.0
    znear: float = 0.05
    zfar: float = 100.0
    cam_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")
        self.cam_to_world = np.asarray(self.cam_to_world, np.float64).reshape(4, 4)

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def position(self) -> np.ndarray:
        return self.cam_to_world[:3, 3].copy()

    def view_matrix(self) -> np.ndarray:
        """(4, 4) world -> camera frame."""
        r = self.cam_to_world[:3, :3]
        t = self.cam_to_world[:3, 3]
        m = np.eye(4)
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ t
        return m

    def projection_matrix(self) -> np.ndarray:
        """(4, 4) camera frame -> clip space, OpenGL convention (NDC z in [-1, 1])."""
        n, f = self.znear, self.zfar
        m = np.zeros((4, 4))
        if self.projection == "perspective":
            ty = 1.0 / math.tan(self.yfov / 2)
            m[0, 0] = ty / self.aspect
            m[1, 1] = ty
            m[2, 2] = (f + n) / (n - f)
            m[2, 3] = 2 * f * n / (n - f)
            m[3, 2] = -1.0
        else:
            half_h = self.ortho_height / 2
            m[0, 0] = 1.0 / (half_h * self.aspect)
            m[1, 1] = 1.0 / half_h
            m[2, 2] = -2.0 / (f - n)
            m[2, 3] = -(f + n) / (f - n)
            m[3, 3] = 1.0
        return m

    def world_to_clip(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> homogeneous clip coordinates (N, 4) float64."""
        p = np.asarray(points, np.float64)
        homo = np.concatenate([p, np.ones((len(p), 1))], axis=1)
        return homo @ (self.projection_matrix() @ self.view_matrix()).T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> image coordinates (N, 2) (u right, v down, pixels) and eye depth (N,)."""
        p = np.asarray(points, np.float64)
        eye = p @ self.view_matrix()[:3, :3].T + self.view_matrix()[:3, 3]
        clip = self.world_to_clip(p)
        ndc = clip[:, :3] / clip[:, 3:4]
        uv = np.stack([(ndc[:, 0] + 1) * 0.5 * self.width, (1 - ndc[:, 1]) * 0.5 * self.height], axis=1)
        return uv, -eye[:, 2]

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Image coordinates (N, 2) and eye depths (N,) -> world points (N, 3)."""
        uv = np.asarray(uv, np.float64)
        d = np.asarray(depth, np.float64)
        ndc_x = uv[:, 0] / self.width * 2 - 1
        ndc_y = 1 - uv[:, 1] / self.height * 2
        if self.projection == "perspective":
            ty = math.tan(self.yfov / 2)
            x = ndc_x * ty * self.aspect * d
            y = ndc_y * ty * d
        else:
            half_h = self.ortho_height / 2
            x = ndc_x * half_h * self.aspect
            y = ndc_y * half_h
        eye = np.stack([x, y, -d], axis=1)
        return eye @ self.cam_to_world[:3, :3].T + self.cam_to_world[:3, 3]

    def pixel_centres(self) -> np.ndarray:
        """(H, W, 2) image coordinates of every pixel centre."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        return np.stack([u + 0.5, v + 0.5], axis=-1).astype(np.float64)

    def to_dict(self) -> dict:
        """JSON-ready description (what the dataset stores as an image's ``camera``)."""
        d = asdict(self)
        d["cam_to_world"] = np.round(self.cam_to_world, 9).tolist()
        d["projection_matrix"] = np.round(self.projection_matrix(), 9).tolist()
        d["image_frame"] = "u right, v down, origin top-left, pixel centres at +0.5; camera looks along -Z"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Camera:
        keys = ("width", "height", "projection", "yfov", "ortho_height", "znear", "zfar", "cam_to_world")
        return cls(**{k: d[k] for k in keys if k in d})


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """(4, 4) cam_to_world of a camera at ``eye`` looking at ``target`` with ``up`` roughly up."""
    eye = np.asarray(eye, np.float64)
    forward = np.asarray(target, np.float64) - eye
    forward /= np.linalg.norm(forward)
    up = np.asarray(up, np.float64)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight up or down: any right vector will do
        right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, true_up, -forward, eye
    return m


def orbit_direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Unit vector from the target towards the camera: yaw 0 looks at the character's front (+Z side),
    yaw grows counter-clockwise seen from above; positive pitch looks down from above."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])


def frame_points(
    points: np.ndarray,
    yaw_deg: float,
    pitch_deg: float,
    *,
    width: int = 512,
    height: int = 512,
    projection: str = "perspective",
    yfov_deg: float = 30.0,
    margin: float = 0.1,
) -> Camera:
    """A camera looking from (yaw, pitch) that fits every point inside the image with ``margin``
    (a fraction of the half-size left free on each side), centred on the points' image-plane extent."""
    points = np.asarray(points)
    if len(points) == 0:
        raise ValueError("cannot frame an empty point set")
    if not 0 <= margin < 0.9:
        raise ValueError(f"margin must be in [0, 0.9), got {margin}")
    # The extremes in the points' own precision (exact), the rest in float64.
    lo = points.min(axis=0).astype(np.float64)
    hi = points.max(axis=0).astype(np.float64)
    pts = points.astype(np.float64, copy=False)
    centre = (lo + hi) / 2
    back = orbit_direction(yaw_deg, pitch_deg)
    basis = look_at(centre + back, centre)[:3, :3]
    right, up = basis[:, 0], basis[:, 1]
    rel = pts - centre
    x, y, z = rel @ right, rel @ up, rel @ back
    # Recentre on the image-plane extent so the margin is even on both sides.
    x_mid, y_mid = (x.max() + x.min()) / 2, (y.max() + y.min()) / 2
    centre = centre + right * x_mid + up * y_mid
    x = x - x_mid
    y = y - y_mid
    z_lo, z_hi = z.min(), z.max()
    aspect = width / height
    fill = 1.0 - margin
    radius = float(np.linalg.norm(rel, axis=1).max()) + 1e-6
    if projection == "perspective":
        ty = math.tan(math.radians(yfov_deg) / 2) * fill
        tx = ty * aspect
        # A point at depth (d - z) stays inside when |x| <= tx (d - z) and |y| <= ty (d - z).
        dist = float(np.max(z + np.maximum(np.abs(x) / tx, np.abs(y) / ty)))
        dist = max(dist, float(z_hi) + 0.1)
        cam = Camera(width, height, "perspective", yfov=math.radians(yfov_deg),
                     znear=max(1e-3, (dist - z_hi) * 0.5), zfar=dist - z_lo + radius + 1.0)
    else:
        half = max(float(np.abs(y).max()), float(np.abs(x).max()) / aspect) / fill
        dist = float(z_hi) + radius + 1.0
        cam = Camera(width, height, "orthographic", ortho_height=2 * max(half, 1e-6),
                     znear=0.5, zfar=dist - z_lo + 1.0)
    cam.cam_to_world = look_at(centre + back * dist, centre)
    return cam


def random_camera(
    rng: np.random.Generator,
    points: np.ndarray,
    *,
    width: int = 512,
    height: int = 512,
    yaw_range: tuple[float, float] = (0.0, 360.0),
    pitch_range: tuple[float, float] = (-10.0, 30.0),
    margin: float = 0.1,
    projection: str = "perspective",
    yfov_range: tuple[float, float] = (20.0, 40.0),
) -> Camera:
    """A seeded random view framing the posed character's vertices ``points`` (N, 3) world metres.

    Yaw is uniform over ``yaw_range`` degrees (360 degrees around by default),
    pitch uniform over ``pitch_range`` (positive looks down), the vertical field
    of view uniform over ``yfov_range`` (perspective only). The same ``rng``
    state gives the same camera.
    """
    view = random_view(rng, yaw_range, pitch_range, yfov_range)
    return frame_points(points, view["yaw"], view["pitch"], width=width, height=height, projection=projection,
                        yfov_deg=view["yfov"], margin=margin)


def random_view(
    rng: np.random.Generator,
    yaw_range: tuple[float, float] = (0.0, 360.0),
    pitch_range: tuple[float, float] = (-10.0, 30.0),
    yfov_range: tuple[float, float] = (20.0, 40.0),
) -> dict:
    """The random draws behind :func:`random_camera`: ``{"yaw", "pitch", "yfov"}`` in degrees."""
    yaw = float(rng.uniform(*yaw_range))
    pitch = float(rng.uniform(*pitch_range))
    yfov = float(rng.uniform(*yfov_range))
    return {"yaw": yaw, "pitch": pitch, "yfov": yfov}
