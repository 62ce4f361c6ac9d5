"""Training configuration: every hyper-parameter in one typed, serialisable tree.

A config is built from a preset (``conrmodel/train/presets/<name>.yaml``), then an
optional user YAML file, then ``--set section.key=value`` overrides, in that
order. Unknown keys are errors (a typo must not silently fall back to a
default). The resolved tree is written to ``RUN_DIR/config.yaml`` and stored in
every checkpoint, so a run records everything it was trained with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conrdata.errors import UserError

PRESET_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class ModelConfig:
    detector: str = "tiny"  # conrmodel.models.factory.build_detector preset
    renderer: str = "tiny"  # conrmodel.models.factory.build_renderer preset
    # The detector IS the renderer's reference parser (one set of weights, as the official release's
    # udpparsernet); needs a renderer whose parser has a UDP decoder of the detector's architecture.
    share_detector: bool = False
    # Give the renderer the UDP-matched reference colours (models.renderer.udp_nearest_colours); needs a
    # renderer preset with reference UDP (tiny, small). Stored in the checkpoint's renderer config.
    udp_match: bool = False


@dataclass
class DataConfig:
    size: int = 64  # training crop side in pixels (multiple of 32)
    refs: int = 4  # m: reference views per sample
    backgrounds: int = 4  # k: backgrounds each reference is pasted on for the detector
    batch_size: int = 4  # samples per process and step
    shuffle_buffer: int = 64  # clips held in the shuffle buffer (bounds memory)
    workers: int = 0  # DataLoader worker processes per rank
    prefetch: int = 2  # batches prefetched per worker
    crop_margin: list = field(default_factory=lambda: [1.05, 1.35])  # crop side / character bbox side
    crop_jitter: float = 0.08  # centre jitter, fraction of the crop side
    background_dir: str | None = None  # images folder, or .tar(s) of images; procedural when None
    unlabeled_weight: float = 1.0  # weight of L_cons on unlabeled (drawn) clips


@dataclass
class OptimConfig:
    steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: str = "cosine"  # cosine | constant | linear
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # final lr = lr * min_lr_ratio (cosine, linear)
    grad_clip: float = 1.0  # max global grad norm; 0 disables


@dataclass
class LossConfig:
    udp: float = 1.0  # L_udp, Eq. 2: L1 on landmarks where the body is
    mask: float = 1.0  # L_mask, Eq. 2: BCE of the occupancy logit
    cons: float = 1.0  # L_cons, Eq. 3: std over the k detector passes
    photo: float = 1.0  # L_photo, Eq. 4: L1 on RGBA
    vgg: float = 0.1  # L_vgg, Eq. 5: VGG-19 feature loss on alpha-weighted RGB
    vgg_weights: str | None = None  # local torchvision-layout VGG-19 state dict; L_vgg off when None
    vgg_layers: list = field(default_factory=lambda: [3, 8, 17, 26])  # relu1_2, relu2_2, relu3_4, relu4_4


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op CPU threads per process (0: torch's default)
    amp: str = "auto"  # auto (bf16 on CUDA, none on CPU) | none | bf16 | fp16
    log_every: int = 10
    image_every: int = 200  # image grid to TensorBoard every N steps (0: never)
    ckpt_every: int = 500
    keep_checkpoints: int = 3  # numbered checkpoints kept besides latest.pt (0: keep all)
    val_every: int = 0  # validation L_photo every N steps when --val-shards is given (0: at the end only)
    val_clips: int = 16
    # For this fraction of optim.steps (the first ones) the renderer gets the references' ground-truth UDP
    # instead of the detector's prediction (teacher forcing while the detector is still poor); 0 = never.
    teacher_forcing: float = 0.0


@dataclass
class Config:
    name: str = "tiny"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> Config:
        d = self.data
        if d.size % 32 or d.size < 32:
            raise UserError(f"data.size must be a positive multiple of 32, got {d.size}")
        for name in ("refs", "backgrounds", "batch_size", "shuffle_buffer"):
            if getattr(d, name) < 1:
                raise UserError(f"data.{name} must be >= 1, got {getattr(d, name)}")
        if len(d.crop_margin) != 2 or not 0 < d.crop_margin[0] <= d.crop_margin[1]:
            raise UserError(f"data.crop_margin must be [low, high] with 0 < low <= high, got {d.crop_margin}")
        if self.optim.schedule not in ("cosine", "constant", "linear"):
            raise UserError(f"optim.schedule must be cosine, constant or linear, got {self.optim.schedule!r}")
        if self.train.amp not in ("auto", "none", "bf16", "fp16"):
            raise UserError(f"train.amp must be auto, none, bf16 or fp16, got {self.train.amp!r}")
        if self.optim.steps < 0:
            raise UserError(f"optim.steps must be >= 0, got {self.optim.steps}")
        if not 0.0 <= self.train.teacher_forcing <= 1.0:
            raise UserError(f"train.teacher_forcing must be in [0, 1], got {self.train.teacher_forcing}")
        return self


def _merge(obj: Any, values: dict[str, Any], where: str, source: str) -> None:
    """Set dataclass fields of ``obj`` from ``values`` (recursively); unknown keys raise UserError."""
    if not isinstance(values, dict):
        raise UserError(f"{where or 'config'} must be a mapping, got {type(values).__name__}", source)
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise UserError(f"unknown config key {path!r} (known: {', '.join(sorted(names))})", source)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, path, source)
        else:
            setattr(obj, key, _coerce(current, value, path, source))


def _coerce(current: Any, value: Any, path: str, source: str) -> Any:
    if value is None or current is None:
        return value
    if isinstance(value, str) and isinstance(current, (int, float)) and not isinstance(current, bool):
        try:  # YAML 1.1 reads "3e-4" as a string
            value = float(value)
        except ValueError:
            raise UserError(f"{path} must be a number, got {value!r}", source) from None
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise UserError(f"{path} must be true or false, got {value!r}", source)
        return value
    if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, (int, float)):
        if float(value) != int(value):
            raise UserError(f"{path} must be an integer, got {value!r}", source)
        return int(value)
    if isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, list) and isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(current, str) and isinstance(value, str):
        return value
    raise UserError(f"{path} must be of type {type(current).__name__}, got {value!r}", source)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read config: {err.strerror}", path) from err
    except yaml.YAMLError as err:
        raise UserError(f"not valid YAML: {str(err).splitlines()[0]}", path) from err
    return data or {}


def load_config(
    preset: str = "tiny", file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Preset, then ``file``, then ``key=value`` overrides (values parsed as YAML scalars/lists)."""
    cfg = Config()
    preset_path = PRESET_DIR / f"{preset}.yaml"
    if not preset_path.exists():
        raise UserError(f"unknown preset {preset!r} (available: {', '.join(preset_names())})")
    _merge(cfg, _read_yaml(preset_path), "", str(preset_path))
    if file is not None:
        _merge(cfg, _read_yaml(Path(file)), "", str(file))
    apply_overrides(cfg, overrides)
    return cfg.validate()


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML) in place; returns ``cfg`` validated."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value (e.g. optim.lr=3e-4), got {item!r}")
        value = yaml.safe_load(raw) if raw.strip() else None
        if isinstance(value, str) and raw.strip().lower() in ("none", "null"):
            value = None
        nested: dict[str, Any] = {}
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        _merge(cfg, nested, "", "--set")
    return cfg.validate()


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a Config from :meth:`Config.to_dict` output (e.g. a checkpoint's ``config``)."""
    cfg = Config()
    _merge(cfg, values, "", "checkpoint config")
    return cfg.validate()


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
