"""Constructor functions and presets for CoNR's two networks (timm-style: one call builds a model).

* :func:`build_detector` -> :class:`~conrmodel.models.detector.UDPDetector`, called as ``det(rgb)`` with rgb
  [B,3,H,W] float in [0,1] (premultiplied by alpha, i.e. a cut-out on black); returns [B,4,H,W]:
  channels 0-2 landmarks in [0,1], channel 3 the mask LOGIT.
* :func:`build_renderer` -> :class:`~conrmodel.models.renderer.CollaborativeRenderer`, called as
  ``ren(target_udp [B,4,H,W], ref_rgba [B,n,4,H,W], ref_udp [B,n,4,H,W] | None)`` -> rgba [B,4,H,W] in
  [0,1], PREMULTIPLIED alpha (official convention); or ``cache = ren.encode_sheet(ref_rgba, ref_udp)``
  once, then ``ren.render(target_udp, cache)`` per batch of poses. UDPs use docs/design.md's encoding.
  Reference RGBA is straight (not premultiplied) alpha.

H and W must be multiples of 32 (64, 128, 256, ... all work). Any number of views n >= 1.

Presets:
  ``official``  the architecture of the official release (detector 57.2M; renderer = parser 57.2M +
                target-pose encoder 27.0M + shader 96.1M + RGBA decoder 0.08M); loads the official files.
  ``small``     a few million parameters, for CPU demos and small GPUs.
  ``tiny``      a few hundred thousand parameters, for tests and smoke runs.

``small`` and ``tiny`` differ from the official design in two switches that make them trainable from
scratch (see :mod:`conrmodel.models.renderer`): ``block_norm="group"`` (GroupNorm in the shader's decoder
blocks; without it the features blow up and alpha collapses to 0 within ~20 Adam steps) and
``target_udp_every_scale=True`` (the target UDP enters every decoder block, the full-resolution one
included). ``official`` keeps both off: its parameter layout and forward are the release's.

Every preset is a plain dict (``DETECTOR_PRESETS`` / ``RENDERER_PRESETS``); keyword overrides replace
entries, e.g. ``build_renderer("tiny", warping=False, message_passes=1, averaging="mean")`` for the
paper's ablations. The built module keeps its full config in ``.config`` (a JSON-able dict) so a
checkpoint can rebuild it with ``build_renderer(**config)`` / ``build_detector(**config)``.
"""

from __future__ import annotations

import copy
from typing import Any

from conrmodel.models.backbones import ResNetEncoder, ResUNet
from conrmodel.models.detector import UDPDetector
from conrmodel.models.renderer import MATCH_CHANNELS, CollaborativeRenderer, CollaborativeShader, RGBADecoder

DETECTOR_PRESETS: dict[str, dict[str, Any]] = {
    "official": dict(arch="resnet50", width=64, norm="instance", pool="conv",
                     decoder_filters=[512, 384, 256, 128, 32], head="official"),
    "small": dict(arch="resnet18", width=16, norm="instance", pool="conv",
                  decoder_filters=[128, 96, 64, 32, 16], head="sigmoid"),
    "tiny": dict(arch="resnet_tiny", width=8, norm="instance", pool="conv",
                 decoder_filters=[32, 24, 16, 8, 8], head="sigmoid"),
}

RENDERER_PRESETS: dict[str, dict[str, Any]] = {
    "official": dict(
        norm="instance",
        parser_arch="resnet50", parser_width=64, parser_pool="conv", parser_decoder=True,
        parser_decoder_filters=[512, 384, 256, 128, 32], parser_head="official",
        target_arch="resnet18", target_width=64, target_pool="max", target_decoder=True,
        target_decoder_filters=[512, 384, 256, 128, 32],
        block_width=224, convblocks=[1, 1, 1, 1, 1, 2], convs_per_block=6, msg_flows=32, last_msg=64,
        reference_udp=False, warping=True, averaging="confidence", message_passes=None, ref_alpha_power=2,
        block_norm="none", target_udp_every_scale=False, udp_match=False,
    ),
    "small": dict(
        norm="instance",
        parser_arch="resnet18", parser_width=16, parser_pool="conv", parser_decoder=False,
        parser_decoder_filters=[128, 96, 64, 32, 16], parser_head="sigmoid",
        target_arch="resnet18", target_width=16, target_pool="max", target_decoder=False,
        target_decoder_filters=[128, 96, 64, 32, 16],
        block_width=48, convblocks=[1, 1, 1, 1, 1, 1], convs_per_block=3, msg_flows=16, last_msg=16,
        reference_udp=True, warping=True, averaging="confidence", message_passes=None, ref_alpha_power=1,
        block_norm="group", target_udp_every_scale=True, udp_match=False,
    ),
    "tiny": dict(
        norm="instance",
        parser_arch="resnet_tiny", parser_width=8, parser_pool="conv", parser_decoder=False,
        parser_decoder_filters=[32, 24, 16, 8, 8], parser_head="sigmoid",
        target_arch="resnet_tiny", target_width=8, target_pool="max", target_decoder=False,
        target_decoder_filters=[32, 24, 16, 8, 8],
        block_width=16, convblocks=[1, 1, 1, 1, 1, 1], convs_per_block=2, msg_flows=8, last_msg=8,
        reference_udp=True, warping=True, averaging="confidence", message_passes=None, ref_alpha_power=1,
        block_norm="group", target_udp_every_scale=True, udp_match=False,
    ),
}

PRESETS = tuple(RENDERER_PRESETS)


def _resolve(presets: dict[str, dict[str, Any]], preset: str, overrides: dict[str, Any], what: str):
    if preset not in presets:
        raise ValueError(f"unknown {what} preset {preset!r}; expected one of {sorted(presets)}")
    cfg = copy.deepcopy(presets[preset])
    unknown = set(overrides) - set(cfg) - {"preset"}
    if unknown:
        raise ValueError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    cfg.update({k: v for k, v in overrides.items() if k != "preset"})
    cfg["preset"] = preset
    return cfg


def detector_config(preset: str = "official", **overrides: Any) -> dict[str, Any]:
    """The full config dict of a detector preset with ``overrides`` applied."""
    return _resolve(DETECTOR_PRESETS, preset, overrides, "detector")


def renderer_config(preset: str = "official", **overrides: Any) -> dict[str, Any]:
    """The full config dict of a renderer preset with ``overrides`` applied."""
    return _resolve(RENDERER_PRESETS, preset, overrides, "renderer")


def build_detector(preset: str = "official", **overrides: Any) -> UDPDetector:
    """The UDP detector for ``preset`` (see module doc); ``det(rgb [B,3,H,W]) -> [B,4,H,W]``."""
    cfg = detector_config(preset, **overrides)
    backbone = ResNetEncoder(cfg["arch"], 3, cfg["width"], norm=cfg["norm"], pool=cfg["pool"])
    det = UDPDetector(backbone, cfg["decoder_filters"], head=cfg["head"], norm=cfg["norm"])
    det.config = cfg
    return det


def build_renderer(preset: str = "official", **overrides: Any) -> CollaborativeRenderer:
    """The collaborative renderer for ``preset`` (see module doc).

    Ablation overrides: ``warping`` (bool), ``averaging`` ("confidence" | "mean"),
    ``message_passes`` (0 .. 5; None = all).
    """
    cfg = renderer_config(preset, **overrides)
    norm = cfg["norm"]
    parser_backbone = ResNetEncoder(cfg["parser_arch"], 3, cfg["parser_width"], norm, cfg["parser_pool"])
    if cfg["parser_decoder"]:
        parser: ResUNet = UDPDetector(parser_backbone, cfg["parser_decoder_filters"], head=cfg["parser_head"],
                                      norm=norm)
    else:
        parser = ResUNet(parser_backbone, classes=4, decoder=False)
    target_backbone = ResNetEncoder(cfg["target_arch"], 4, cfg["target_width"], norm, cfg["target_pool"])
    target = ResUNet(target_backbone, classes=1, decoder_filters=cfg["target_decoder_filters"], norm=norm,
                     decoder=cfg["target_decoder"])
    ref_chns = list(parser_backbone.channels)
    levels = len(cfg["convblocks"])
    extra = levels - len(ref_chns)
    msgs = ref_chns + [cfg["last_msg"]] * extra
    locals_ = ref_chns + [0] * extra
    target_chns = list(target_backbone.channels)
    if cfg["target_udp_every_scale"]:
        target_chns = [c + 4 for c in target_chns] + [4]
    if cfg["udp_match"]:  # the matched reference colours of every view, at every target scale
        target_chns = [c + MATCH_CHANNELS for c in target_chns]
    shader = CollaborativeShader(
        ref_dim=8 if cfg["reference_udp"] else 4,
        target_chns=target_chns,
        ref_chns=ref_chns,
        msgs=msgs,
        locals_=locals_,
        widths=[cfg["block_width"]] * levels,
        num_convblocks=cfg["convblocks"],
        convs_per_block=cfg["convs_per_block"],
        msg_flows=cfg["msg_flows"],
        warping=cfg["warping"],
        averaging=cfg["averaging"],
        message_passes=cfg["message_passes"],
        block_norm=cfg["block_norm"],
    )
    decoder = RGBADecoder(msgs[-1] + (MATCH_CHANNELS if cfg["udp_match"] else 0))
    ren = CollaborativeRenderer(parser, target, shader, decoder, reference_udp=cfg["reference_udp"],
                                ref_alpha_power=cfg["ref_alpha_power"],
                                target_udp_every_scale=cfg["target_udp_every_scale"],
                                udp_match=cfg["udp_match"])
    ren.config = cfg
    return ren
