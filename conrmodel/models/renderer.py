"""The collaborative renderer: a target UDP + n reference images of a character -> the character in that pose.

Four parts, named as the four files of the official release so each loads with ``strict=True``:

* ``udpparsernet``: the reference encoder, a ResNet U-Net (ResNet-50 in the official files) applied to
  every reference image; its encoder's five skip maps are the reference features.
* ``target_pose_encoder``: a ResNet with a 4-channel stem (ResNet-18) encoding the target UDP. With
  ``target_udp_every_scale`` (the small and tiny presets) the area-resized target UDP is also
  concatenated to every scale's features and given alone to the last, full-resolution block, as in the
  paper, so every decoder block - the last one included - sees where the body is.
* ``shader``: :class:`CollaborativeShader`, the collaborative decoder. One sub-network per reference
  view, all views sharing weights; at every scale each view's :class:`DecoderBlock` predicts a residual
  flow, a mask/confidence and messages; the view's reference image, features and messages are warped by
  its flows (grouped warping: two flow channels per channel group); the views' flows, warped references
  and messages are then averaged with softmax-over-views confidence weights and passed to every view's
  next block. The last block's averaged message is the output feature map. The blocks are plain
  conv + PReLU stacks in the official network; the small and tiny presets put a GroupNorm before every
  PReLU (``block_norm="group"``). Without it the chain of blocks (~40 convs, messages handed on
  unnormalised) is trained by Adam into a feature blow-up within ~20 steps: the RGBA sigmoid saturates,
  alpha collapses to 0 and its gradient vanishes, so the all-transparent image is never left again.
* ``rgbadecodernet``: :class:`RGBADecoder`, a residual conv head turning that feature map into RGBA.

With ``udp_match`` (off in the official preset, which has no reference UDP) every view also gets, in the
target's frame, the colour of the reference pixel whose UDP landmark is nearest to the target pixel's
(:func:`udp_nearest_colours`, no parameters): the correspondence the UDP encoding is designed to give,
handed to every decoder block next to the target-pose features. Learned flows alone, in the tiny and
small presets trained on a CPU budget, never found it (the renderer painted every character's mask one
grey; issue 16), so this gives the blocks a starting point that the flows, masks and messages refine.

Tensors: ``target_udp`` [B,4,H,W] in the project's UDP encoding (xyz in [0,1], occupancy; background 0);
``ref_rgba`` [B,n,4,H,W] straight (not premultiplied) RGBA in [0,1]; ``ref_udp`` [B,n,4,H,W] or None.
The output RGBA [B,4,H,W] in [0,1] is PREMULTIPLIED (rgb already multiplied by alpha), as in the official
release; :func:`unpremultiply` gives straight alpha for saving. Flows are in pixels of the map they
apply to, x then y. H and W must be multiples of 32. The result does not depend on the order of the
reference views (per-view weights are shared and views are only ever combined by sums).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from conrmodel.models.backbones import ResUNet, pad_to_multiple
from conrmodel.models.detector import normalise_input, udp_from_prediction

# ---------------------------------------------------------------------------------------------- warping


def backward_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` [N,C,H,W] at ``p + flow(p)``; ``flow`` [N,2,H,W] in pixels (x, y); border padding."""
    n, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    # align_corners=True: pixel centres at -1 .. 1, so one pixel is 2 / (size - 1)
    sx = flow[:, 0] * (2.0 / max(w - 1, 1))
    sy = flow[:, 1] * (2.0 / max(h - 1, 1))
    grid = torch.stack([gx.unsqueeze(0) + sx, gy.unsqueeze(0) + sy], dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def grouped_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp channel groups of ``x`` [N,C,H,W] by their own flows: ``flow`` [N,2G,H,W], C divisible by G."""
    n, c, h, w = x.shape
    groups = flow.shape[1] // 2
    if flow.shape[1] % 2 or c % groups:
        raise ValueError(f"cannot warp {c} channels with {flow.shape[1]} flow channels")
    out = backward_warp(x.reshape(n * groups, c // groups, h, w), flow.reshape(n * groups, 2, h, w))
    return out.reshape(n, c, h, w)


def rescale_flow(flow: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a pixel-unit flow field to ``size`` (H, W), scaling its vectors with the map."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    out = F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return out * scale.repeat(1, flow.shape[1] // 2, 1, 1)


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------- matching

MATCH_CHANNELS = 5  # premultiplied rgb, alpha, closeness
MATCH_SCALE = 0.03  # UDP distance (fraction of the character's height) at which closeness falls to 1/e


@torch.no_grad()
def udp_nearest_colours(target_udp: torch.Tensor, ref_rgba: torch.Tensor, ref_udp: torch.Tensor,
                        chunk: int = 4096) -> torch.Tensor:
    """For every body pixel of the target, the reference pixel with the nearest A-pose landmark.

    ``target_udp`` [B,4,H,W]; ``ref_rgba`` [B,n,4,H,W] (any 4 channels to carry over, here premultiplied
    rgb + alpha); ``ref_udp`` [B,n,4,H,W]. Returns [B,n,5,H,W]: the nearest reference pixel's 4 channels
    and its closeness ``exp(-d / MATCH_SCALE)`` (d = Euclidean landmark distance, UDP units), per view;
    zeros where the target has no body or the view none. No gradient (a lookup, like nearest-neighbour
    warping); cost O(body pixels of target x of reference), computed ``chunk`` target pixels at a time.
    """
    b, n, c, h, w = ref_rgba.shape
    out = target_udp.new_zeros(b, n, c + 1, h * w)
    t_xyz = target_udp[:, :3].flatten(2)
    r_xyz = ref_udp[:, :, :3].flatten(3)
    r_val = ref_rgba.flatten(3).to(out.dtype)
    for i in range(b):
        t_idx = torch.nonzero(target_udp[i, 3].flatten() > 0.5).squeeze(1)
        if t_idx.numel() == 0:
            continue
        t_pts = t_xyz[i][:, t_idx].t().float()
        for j in range(n):
            r_idx = torch.nonzero(ref_udp[i, j, 3].flatten() > 0.5).squeeze(1)
            if r_idx.numel() == 0:
                continue
            r_pts = r_xyz[i, j][:, r_idx].t().float()
            for s in range(0, t_idx.numel(), chunk):
                exact = "donot_use_mm_for_euclid_dist"  # the faster matmul form is off by ~1e-3
                dist, arg = torch.cdist(t_pts[s:s + chunk], r_pts, compute_mode=exact).min(dim=1)
                where = t_idx[s:s + chunk]
                out[i, j, :c, where] = r_val[i, j][:, r_idx[arg]]
                out[i, j, c, where] = torch.exp(-dist / MATCH_SCALE).to(out.dtype)
    return out.reshape(b, n, c + 1, h, w)


def combine_matches(matched: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """[B,n,5,H,W] per-view matches -> [B,5,H,W]: the views' rgb and alpha weighted by a softmax over views
    of closeness / ``temperature`` (the closest view wins), and the best closeness."""
    close = matched[:, :, 4:5]
    w = torch.softmax(close / temperature, dim=1)
    return torch.cat([(w * matched[:, :, :4]).sum(dim=1), close.amax(dim=1)], dim=1)


# ---------------------------------------------------------------------------------------------- blocks


def _groups(channels: int, per_group: int = 4) -> int:
    """GroupNorm groups of about ``per_group`` channels (a divisor of ``channels``)."""
    g = max(1, channels // per_group)
    while channels % g:
        g -= 1
    return g


@dataclass
class BlockOutput:
    flow: torch.Tensor  # [N,2,h,w] residual flow
    mask: torch.Tensor  # [N,2+M,h,w] in (0,1): 0 = image/flow confidence, 1 = features, 2: = messages
    message: torch.Tensor | None  # [N,M,h,w] the view's contribution to the shared message
    message_flow: torch.Tensor | None  # [N,2G,h,w]
    local: torch.Tensor | None  # [N,L,h,w] the view's private message to its own next block
    local_flow: torch.Tensor | None


class DecoderBlock(nn.Module):
    """One scale of the collaborative decoder for one view (official names ``conv0``, ``convblocks``,
    ``conv_last``): two stride-2 convs, residual conv stacks at 1/4 resolution, two x2 transposed convs.
    ``norm="group"`` puts a GroupNorm (groups of 4 channels; per sample and view, so views stay
    independent and order-free) before every PReLU; ``"none"`` is the official layout.

    Output channels, in order: flow (2), messages (M), message flows (2G, if M), local messages (L),
    local flows (2G', if L), masks (2 + M, sigmoid).
    """

    def __init__(self, in_planes: int, width: int, num_convblocks: int, convs_per_block: int,
                 out_msgs: int, out_locals: int, msg_flows: int, local_flows: int, norm: str = "none"):
        super().__init__()
        if norm not in ("none", "group"):
            raise ValueError(f"unknown decoder block norm {norm!r}; expected 'none' or 'group'")
        self.norm = norm

        def act() -> list[nn.Module]:  # (GroupNorm,) PReLU after every conv
            if norm == "none":
                return [nn.PReLU(width)]
            return [nn.GroupNorm(_groups(width), width), nn.PReLU(width)]

        self.conv0 = nn.Sequential(
            nn.Conv2d(in_planes, width, 3, 2, 1), *act(),
            nn.Conv2d(width, width, 3, 2, 1), *act(),
        )
        self.convblocks = nn.ModuleList()
        for _ in range(num_convblocks):
            layers: list[nn.Module] = []
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(width, width, 3, 1, 1), *act()]
            self.convblocks.append(nn.Sequential(*layers))
        self.split = [
            2,
            out_msgs,
            msg_flows if out_msgs else 0,
            out_locals,
            local_flows if out_locals else 0,
            2 + out_msgs,
        ]
        self.conv_last = nn.Sequential(
            nn.ConvTranspose2d(width, width, 4, 2, 1), *act(),
            nn.ConvTranspose2d(width, sum(self.split), 4, 2, 1),
        )
        self.in_planes = in_planes

    def forward(self, inputs: Sequence[torch.Tensor | None]) -> BlockOutput:
        x = torch.cat([t for t in inputs if t is not None], dim=1)
        if x.shape[1] != self.in_planes:
            raise ValueError(f"decoder block expects {self.in_planes} input channels, got {x.shape[1]}")
        # two stride-2 convs then two x2 transposed convs: pad so the round trip returns the same size
        x, (h, w) = pad_to_multiple(x, 4)
        feat = self.conv0(x)
        for block in self.convblocks:
            feat = block(feat) + feat
        out = self.conv_last(feat)[..., :h, :w]
        parts = list(torch.split(out, self.split, dim=1))
        flow, msg, msg_flow, local, local_flow, mask = parts
        return BlockOutput(
            flow=flow,
            mask=torch.sigmoid(mask),
            message=msg if msg.shape[1] else None,
            message_flow=msg_flow if msg_flow.shape[1] else None,
            local=local if local.shape[1] else None,
            local_flow=local_flow if local_flow.shape[1] else None,
        )


class CollaborativeShader(nn.Module):
    """The collaborative decoder (official ``CINN``): ``len(msgs)`` scales, coarse to fine.

    Args:
        ref_dim: channels of a reference image as the shader sees it (4 = premultiplied RGB + alpha;
            8 when the reference UDP is appended).
        target_chns: target-pose feature channels per scale (5 scales: /32 ... /2).
        ref_chns: reference feature channels per scale (5 scales).
        msgs: shared-message channels each scale's block emits (one entry per block).
        locals_: private-message channels per block.
        widths, num_convblocks: per-block conv width and number of residual conv stacks.
        convs_per_block: convs in one residual stack (6 in the official network).
        msg_flows: flow channels for warping messages (2 per group; 32 = 16 groups officially).
        warping: apply the predicted flows (False = the paper's "no warping" ablation: every flow
            is predicted but nothing is moved).
        averaging: ``"confidence"`` (softmax-over-views of the predicted masks, times the masks) or
            ``"mean"`` (plain mean over views, the "no confidence weighting" ablation).
        message_passes: how many block-to-block transitions carry the views' averaged flow,
            reference and message; the earlier ones carry each view's own values instead (no
            exchange). Default: all ``len(msgs) - 1``. The final output is always the average.
        block_norm: ``"none"`` (official) or ``"group"``, see :class:`DecoderBlock`.
    """

    def __init__(self, ref_dim: int, target_chns: Sequence[int], ref_chns: Sequence[int],
                 msgs: Sequence[int], locals_: Sequence[int], widths: Sequence[int],
                 num_convblocks: Sequence[int], convs_per_block: int = 6, msg_flows: int = 32,
                 warping: bool = True, averaging: str = "confidence", message_passes: int | None = None,
                 block_norm: str = "none"):
        super().__init__()
        levels = len(msgs)
        if not (len(locals_) == len(widths) == len(num_convblocks) == levels):
            raise ValueError("msgs, locals_, widths and num_convblocks need one entry per block")
        if len(target_chns) > levels or len(ref_chns) > levels:
            raise ValueError("more feature scales than decoder blocks")
        if averaging not in ("confidence", "mean"):
            raise ValueError(f"unknown averaging {averaging!r}; expected 'confidence' or 'mean'")
        passes = levels - 1 if message_passes is None else int(message_passes)
        if not 0 <= passes <= levels - 1:
            raise ValueError(f"message_passes must be in [0, {levels - 1}]")
        self.ref_dim = ref_dim
        self.n_target = len(target_chns)
        self.n_ref = len(ref_chns)
        self.warping = warping
        self.averaging = averaging
        self.message_passes = passes
        in_msgs = [0, *msgs[:-1]]
        in_locals = [0, *locals_[:-1]]
        shared_in = 2 + 2 + 2 * ref_dim  # own flow + averaged flow, own + averaged warped reference
        self.decoder_blocks = nn.ModuleList()
        for i in range(levels):
            cin = shared_in + in_msgs[i] + in_locals[i]
            cin += target_chns[i] if i < len(target_chns) else 0
            cin += ref_chns[i] if i < len(ref_chns) else 0
            self.decoder_blocks.append(DecoderBlock(
                cin, widths[i], num_convblocks[i], convs_per_block, msgs[i], locals_[i], msg_flows, msg_flows,
                norm=block_norm,
            ))

    def _warp(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return grouped_warp(x, flow) if self.warping else x

    def _weights(self, mask: torch.Tensor, b: int, n: int) -> torch.Tensor:
        """Per-view combination weights [B,n,C,h,w] from masks [B*n,C,h,w]; they sum over views to <= 1."""
        m = mask.reshape(b, n, *mask.shape[1:])
        if self.averaging == "mean":
            return torch.full_like(m, 1.0 / n)
        return m * torch.softmax(m, dim=1)

    def forward(self, target_feats: Sequence[torch.Tensor], x_ref: torch.Tensor,
                ref_feats: Sequence[torch.Tensor],
                view_feats: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``target_feats`` [B,C,h,w] per scale, ``x_ref`` [B,n,D,H,W], ``ref_feats`` [B,n,C,h,w] per scale
        -> the averaged last message [B,M,H,W]. ``view_feats`` [B,n,C',h,w], one per target scale, are
        per-view maps in the target's frame appended to that scale's target features (``target_chns``
        counts them)."""
        b, n = x_ref.shape[:2]
        flat_ref = x_ref.reshape(b * n, *x_ref.shape[2:])
        flat_feats = [f.reshape(b * n, *f.shape[2:]) for f in ref_feats]

        def per_view(t: torch.Tensor) -> torch.Tensor:  # [B,...] -> [B*n,...], the same for every view
            return t.unsqueeze(1).expand(b, n, *t.shape[1:]).reshape(b * n, *t.shape[1:])

        def combine(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # [B*n,C,h,w] -> [B,C,h,w]
            return (w * x.reshape(b, n, *x.shape[1:])).sum(dim=1)

        levels = len(self.decoder_blocks)
        size = flat_feats[0].shape[-2:]
        acc_flow = flat_ref.new_zeros(b * n, 2, *size)
        wref = _resize(flat_ref, size)
        wfeat: torch.Tensor | None = flat_feats[0]
        local: torch.Tensor | None = None
        shared_flow, shared_ref, shared_msg = acc_flow, wref, None
        result: torch.Tensor | None = None
        for level, block in enumerate(self.decoder_blocks):
            target = per_view(target_feats[level]) if level < self.n_target else None
            if target is not None and view_feats is not None:
                extra = view_feats[level]
                target = torch.cat([target, extra.reshape(b * n, *extra.shape[2:])], dim=1)
            out = block([acc_flow, target, wref, wfeat, shared_flow, shared_ref, shared_msg, local])
            last = level == levels - 1
            next_feat = flat_feats[level + 1] if level + 1 < self.n_ref else None
            size = (next_feat if next_feat is not None else flat_ref).shape[-2:]
            mask = _resize(out.mask, size)
            msg = out.message
            if msg is not None:
                msg = _resize(msg, size)
                if out.message_flow is not None:
                    msg = self._warp(msg, rescale_flow(out.message_flow, size))
            if last:  # only the averaged message leaves the last block
                if msg is None:
                    raise ValueError("the last decoder block must emit messages")
                result = combine(msg, self._weights(mask, b, n)[:, :, 2:])
                break
            acc_flow = rescale_flow(acc_flow + out.flow, size)
            local = out.local
            if local is not None:
                local = _resize(local, size)
                if out.local_flow is not None:
                    local = self._warp(local, rescale_flow(out.local_flow, size))
            wref = self._warp(_resize(flat_ref, size), acc_flow)
            wfeat = self._warp(next_feat, acc_flow) if next_feat is not None else None

            weights = self._weights(mask, b, n)
            avg_msg = combine(msg, weights[:, :, 2:]) if msg is not None else None
            exchange = level + 1 >= levels - self.message_passes
            if exchange:
                shared_flow = per_view(combine(acc_flow, weights[:, :, 0:1]))
                shared_ref = per_view(combine(wref, weights[:, :, 0:1]))
                shared_msg = per_view(avg_msg) if avg_msg is not None else None
            else:
                shared_flow, shared_ref, shared_msg = acc_flow, wref, msg
        assert result is not None
        return result


class ResConv(nn.Module):
    """Pre-activation residual unit whose "norms" are 1x1 convs (official ``ResConv2d`` names)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = nn.Conv2d(channels, channels, 1)
        self.norm2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class RGBADecoder(nn.Module):
    """Feature map [B,C,H,W] -> RGBA logits through sigmoid -> (rgb * a, a), premultiplied, in [0,1]."""

    def __init__(self, channels: int = 64, bottleneck_blocks: int = 1):
        super().__init__()
        self.conv_rgba = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1))  # official name conv_rgba.0
        self.bottleneck = nn.Sequential()
        for i in range(bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResConv(channels))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        out = torch.sigmoid(self.conv_rgba(self.bottleneck(feat)))
        alpha = out[:, 3:4]
        return torch.cat([out[:, :3] * alpha, alpha], dim=1)


# ---------------------------------------------------------------------------------------------- renderer


@dataclass
class SheetCache:
    """An encoded character sheet: reuse it for any number of target poses of that character.

    ``x_ref`` [B,n,D,H,W] the references as the shader sees them; ``feats`` [B,n,C,h,w] per scale.
    """

    x_ref: torch.Tensor
    feats: list[torch.Tensor]

    @property
    def views(self) -> int:
        return int(self.x_ref.shape[1])

    def expand(self, batch: int) -> SheetCache:
        """The same sheet for ``batch`` targets (a view, no copy) when it was encoded with batch 1."""
        if self.x_ref.shape[0] == batch:
            return self
        if self.x_ref.shape[0] != 1:
            raise ValueError(f"sheet encoded for batch {self.x_ref.shape[0]}, targets have batch {batch}")
        return SheetCache(
            self.x_ref.expand(batch, *self.x_ref.shape[1:]),
            [f.expand(batch, *f.shape[1:]) for f in self.feats],
        )


class CollaborativeRenderer(nn.Module):
    """``ren(target_udp, ref_rgba, ref_udp) -> rgba``; ``ren.encode_sheet`` + ``ren.render`` for reuse.

    Args:
        udpparsernet: reference encoder (a :class:`~conrmodel.models.detector.UDPDetector` or a decoder-less
            :class:`~conrmodel.models.backbones.ResUNet` with a 3-channel backbone).
        target_pose_encoder: a :class:`ResUNet` with a 4-channel backbone (its decoder, if any, is unused:
            the official file has one).
        shader: :class:`CollaborativeShader`; ``rgbadecodernet``: :class:`RGBADecoder`.
        reference_udp: append the references' UDP to the shader's reference images (``shader.ref_dim``
            must then be 8). When ``ref_udp`` is not given, the parser's own prediction is used, which
            needs a parser with a decoder.
        ref_alpha_power: the shader sees reference colour ``rgb * alpha ** p``. The official code
            multiplied its already premultiplied images by alpha once more (p = 2; the same wherever
            alpha is 0 or 1); ours use p = 1.
        target_udp_every_scale: :meth:`encode_target` appends the target UDP (area-resized) to every
            scale's features and adds it alone as a sixth, full-resolution scale; the shader's
            ``target_chns`` must then be the encoder's channels + 4, then 4.
        udp_match: give every view :func:`udp_nearest_colours` of its reference (area-resized to every
            target scale, ``MATCH_CHANNELS`` more ``target_chns`` each), and the RGBA decoder their
            closeness-weighted combination over the views (:func:`combine_matches`; the decoder then
            takes ``MATCH_CHANNELS`` more channels than the last message); needs ``reference_udp``.
    """

    def __init__(self, udpparsernet: ResUNet, target_pose_encoder: ResUNet, shader: CollaborativeShader,
                 rgbadecodernet: RGBADecoder, reference_udp: bool = False, ref_alpha_power: int = 1,
                 target_udp_every_scale: bool = False, udp_match: bool = False):
        super().__init__()
        if udp_match and not reference_udp:
            raise ValueError("udp_match needs reference_udp (the references' UDP to match against)")
        self.target_udp_every_scale = bool(target_udp_every_scale)
        self.udp_match = bool(udp_match)
        self.udpparsernet = udpparsernet
        self.target_pose_encoder = target_pose_encoder
        self.shader = shader
        self.rgbadecodernet = rgbadecodernet
        self.reference_udp = reference_udp
        self.ref_alpha_power = int(ref_alpha_power)
        expected = 8 if reference_udp else 4
        if shader.ref_dim != expected:
            raise ValueError(
                f"shader.ref_dim is {shader.ref_dim}, reference_udp={reference_udp} needs {expected}"
            )

    @staticmethod
    def _check_size(x: torch.Tensor, what: str) -> None:
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"{what} is {h}x{w}; height and width must be multiples of 32")

    def encode_sheet(self, ref_rgba: torch.Tensor, ref_udp: torch.Tensor | None = None) -> SheetCache:
        """Encode the references once: ``ref_rgba`` [B,n,4,H,W] straight RGBA in [0,1]; ``ref_udp`` alike."""
        if ref_rgba.dim() != 5 or ref_rgba.shape[2] != 4:
            raise ValueError(f"ref_rgba must be [B,n,4,H,W], got {tuple(ref_rgba.shape)}")
        self._check_size(ref_rgba, "the reference images")
        b, n, _, h, w = ref_rgba.shape
        flat = ref_rgba.reshape(b * n, 4, h, w)
        alpha = flat[:, 3:4]
        premul = flat[:, :3] * alpha
        parts = [premul * alpha ** (self.ref_alpha_power - 1), alpha]
        if self.reference_udp:
            need_pred = ref_udp is None
            if need_pred:
                if not getattr(self.udpparsernet, "has_decoder", False):
                    raise ValueError("this renderer needs ref_udp (its parser has no UDP decoder)")
                pred, feats = self.udpparsernet.predict_with_features(premul)  # type: ignore[operator]
                udp = udp_from_prediction(pred)
            else:
                udp = ref_udp.reshape(b * n, 4, h, w)
                feats = self.udpparsernet.backbone.features(normalise_input(premul))
            parts.append(udp)
        else:
            feats = self.udpparsernet.backbone.features(normalise_input(premul))
        x_ref = torch.cat(parts, dim=1).reshape(b, n, -1, h, w)
        return SheetCache(x_ref, [f.reshape(b, n, *f.shape[1:]) for f in feats])

    def encode_target(self, target_udp: torch.Tensor) -> list[torch.Tensor]:
        """Target-pose features per scale for ``target_udp`` [B,4,H,W] (coarse to fine)."""
        if target_udp.dim() != 4 or target_udp.shape[1] != 4:
            raise ValueError(f"target_udp must be [B,4,H,W], got {tuple(target_udp.shape)}")
        self._check_size(target_udp, "the target UDP")
        occ = target_udp[:, 3:4]
        x = torch.cat([target_udp[:, :3] * occ, occ], dim=1)
        feats = self.target_pose_encoder.backbone.features(normalise_input(x))
        if not self.target_udp_every_scale:
            return feats
        # the UDP itself, area-resized, next to every scale's features and alone at full resolution
        resized = [F.interpolate(x, size=tuple(f.shape[-2:]), mode="area") for f in feats]
        return [torch.cat([f, u], dim=1) for f, u in zip(feats, resized)] + [x]

    def render(self, target_udp: torch.Tensor, cache: SheetCache) -> torch.Tensor:
        """Draw the encoded sheet's character in each target pose -> premultiplied RGBA [B,4,H,W]."""
        target_feats = self.encode_target(target_udp)
        cache = cache.expand(target_udp.shape[0])
        if tuple(cache.x_ref.shape[-2:]) != tuple(target_udp.shape[-2:]):
            raise ValueError(
                f"sheet is {tuple(cache.x_ref.shape[-2:])} but target is {tuple(target_udp.shape[-2:])}"
            )
        view_feats = None
        if self.udp_match:
            x_ref = cache.x_ref
            matched = udp_nearest_colours(target_udp, x_ref[:, :, :4], x_ref[:, :, 4:8])
            b, n = matched.shape[:2]
            flat = matched.reshape(b * n, *matched.shape[2:])
            view_feats = [
                F.interpolate(flat, size=tuple(f.shape[-2:]), mode="area").reshape(b, n, -1, *f.shape[-2:])
                for f in target_feats
            ]
        feat = self.shader(target_feats, cache.x_ref, cache.feats, view_feats)
        if self.udp_match:  # a full-resolution path from the matched colours to the output
            feat = torch.cat([feat, combine_matches(matched)], dim=1)
        return self.rgbadecodernet(feat)

    def forward(self, target_udp: torch.Tensor, ref_rgba: torch.Tensor,
                ref_udp: torch.Tensor | None = None) -> torch.Tensor:
        return self.render(target_udp, self.encode_sheet(ref_rgba, ref_udp))


def unpremultiply(rgba: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Premultiplied [...,4,H,W] -> straight alpha (rgb / a where a > eps, else 0)."""
    alpha = rgba[..., 3:4, :, :]
    rgb = rgba[..., :3, :, :]
    rgb = torch.where(alpha > eps, rgb / alpha.clamp_min(eps), torch.zeros_like(rgb))
    return torch.cat([rgb.clamp(0.0, 1.0), alpha], dim=-3)


def premultiply(rgba: torch.Tensor) -> torch.Tensor:
    """Straight [...,4,H,W] -> premultiplied."""
    alpha = rgba[..., 3:4, :, :]
    return torch.cat([rgba[..., :3, :, :] * alpha, alpha], dim=-3)
