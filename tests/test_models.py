"""The detector and renderer contracts (conrmodel.models.factory), on the tiny preset unless stated."""

from __future__ import annotations

import pytest
import torch

from conrmodel.models.factory import build_detector, build_renderer, renderer_config
from conrmodel.models.renderer import premultiply, unpremultiply


def _inputs(b: int, n: int, h: int = 64, w: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    occ = (torch.rand(b, 1, h, w, generator=g) > 0.4).float()
    target = torch.cat([torch.rand(b, 3, h, w, generator=g) * occ, occ], dim=1)
    ref_rgba = torch.rand(b, n, 4, h, w, generator=g)
    ref_occ = (torch.rand(b, n, 1, h, w, generator=g) > 0.4).float()
    ref_udp = torch.cat([torch.rand(b, n, 3, h, w, generator=g) * ref_occ, ref_occ], dim=2)
    return target, ref_rgba, ref_udp


def _seeded(builder, *args, **kwargs):
    torch.manual_seed(1234)
    return builder(*args, **kwargs).eval()


def test_detector_contract_and_backward():
    det = _seeded(build_detector, "tiny").train()
    rgb = torch.rand(2, 3, 64, 64, requires_grad=False)
    out = det(rgb)
    assert out.shape == (2, 4, 64, 64)
    assert float(out[:, :3].detach().min()) >= 0.0 and float(out[:, :3].detach().max()) <= 1.0
    out.square().mean().backward()
    missing = [n for n, p in det.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert 50_000 < sum(p.numel() for p in det.parameters()) < 1_000_000


def test_tiny_renderer_forward_backward_all_parameters_used():
    ren = _seeded(build_renderer, "tiny").train()
    target, ref_rgba, ref_udp = _inputs(2, 3)
    out = ren(target, ref_rgba, ref_udp)
    assert out.shape == (2, 4, 64, 64)
    assert float(out.detach().min()) >= 0.0 and float(out.detach().max()) <= 1.0
    # premultiplied: colour never exceeds alpha
    assert bool((out[:, :3] <= out[:, 3:4] + 1e-6).all())
    out.mean().backward()
    missing = [n for n, p in ren.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient (DDP would need find_unused_parameters): {missing[:5]}"
    assert 100_000 < sum(p.numel() for p in ren.parameters()) < 1_000_000


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_any_number_of_views(n):
    ren = _seeded(build_renderer, "tiny")
    target, ref_rgba, ref_udp = _inputs(2, n, seed=n)
    with torch.no_grad():
        out = ren(target, ref_rgba, ref_udp)
    assert out.shape == (2, 4, 64, 64)
    assert torch.isfinite(out).all()


def test_non_square_and_larger_sizes():
    ren = _seeded(build_renderer, "tiny")
    for h, w in [(128, 96), (32, 64)]:
        target, ref_rgba, ref_udp = _inputs(1, 2, h, w)
        with torch.no_grad():
            assert ren(target, ref_rgba, ref_udp).shape == (1, 4, h, w)


def test_output_independent_of_view_order():
    ren = _seeded(build_renderer, "tiny")
    target, ref_rgba, ref_udp = _inputs(2, 5, seed=3)
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        a = ren(target, ref_rgba, ref_udp)
        b = ren(target, ref_rgba[:, perm], ref_udp[:, perm])
    assert torch.allclose(a, b, atol=1e-5)
    # ... but it does depend on the views' content
    with torch.no_grad():
        c = ren(target, ref_rgba.flip(-1), ref_udp)
    assert (a - c).abs().max() > 1e-4


def test_sheet_cache_equals_forward_and_broadcasts_over_targets():
    ren = _seeded(build_renderer, "tiny")
    target, ref_rgba, ref_udp = _inputs(3, 2, seed=5)
    sheet_rgba, sheet_udp = ref_rgba[:1], ref_udp[:1]
    with torch.no_grad():
        cache = ren.encode_sheet(sheet_rgba, sheet_udp)
        batched = ren.render(target, cache)
        one_by_one = torch.cat([ren(target[i : i + 1], sheet_rgba, sheet_udp) for i in range(3)])
    assert torch.allclose(batched, one_by_one, atol=1e-5)


def test_missing_ref_udp_needs_a_parser_decoder():
    ren = _seeded(build_renderer, "tiny")
    target, ref_rgba, _ = _inputs(1, 2)
    with pytest.raises(ValueError, match="ref_udp"):
        ren(target, ref_rgba, None)
    with_decoder = _seeded(build_renderer, "tiny", parser_decoder=True)
    with torch.no_grad():
        assert with_decoder(target, ref_rgba, None).shape == (1, 4, 64, 64)


def test_sizes_must_be_multiples_of_32():
    ren = _seeded(build_renderer, "tiny")
    target, ref_rgba, ref_udp = _inputs(1, 1, 48, 64)
    with pytest.raises(ValueError, match="multiples of 32"):
        ren(target, ref_rgba, ref_udp)


def test_unknown_preset_and_option_are_errors():
    with pytest.raises(ValueError, match="preset"):
        build_renderer("huge")
    with pytest.raises(ValueError, match="option"):
        build_renderer("tiny", warpping=False)
    assert renderer_config("tiny", warping=False)["warping"] is False


def test_premultiply_round_trip():
    rgba = torch.rand(2, 4, 8, 8)
    rgba[:, 3] = (rgba[:, 3] > 0.3).float() * rgba[:, 3]
    back = unpremultiply(premultiply(rgba))
    on = rgba[:, 3:4].expand(-1, 3, -1, -1) > 1e-3
    assert torch.allclose(back[:, :3][on], rgba[:, :3][on], atol=1e-5)
    assert torch.equal(back[:, 3], rgba[:, 3])


@pytest.mark.slow
def test_official_architecture_runs_at_64px():
    ren = _seeded(build_renderer, "official")
    det = _seeded(build_detector, "official")
    target, ref_rgba, ref_udp = _inputs(1, 2)
    with torch.no_grad():
        out = ren(target, ref_rgba, None)
        udp = det(ref_rgba[:, 0, :3])
        perm = ren(target, ref_rgba.flip(1), None)
    assert out.shape == (1, 4, 64, 64) and udp.shape == (1, 4, 64, 64)
    assert torch.allclose(out, perm, atol=1e-5)
