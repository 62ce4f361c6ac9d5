"""Official-checkpoint compatibility: names and shapes of the four official files load strictly.

``tests/data/official_conr_state_dicts.json`` lists every state-dict entry (name -> shape) of the four
files of the official release, read off the official networks built with random weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conrdata.errors import FormatError, UserError
from conrmodel.backbones import ResNetEncoder, load_torchvision_resnet
from conrmodel.models import build_detector, build_renderer
from conrmodel.official import (
    OFFICIAL_FILES,
    PAPER_PARAMS_M,
    load_official,
    load_strict,
    read_state_dict,
    save_official,
)

LAYOUT = json.loads((Path(__file__).parent / "data" / "official_conr_state_dicts.json").read_text())


def _random_state(layout: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(*shape, generator=g) * 0.01 for name, shape in layout.items()}


def test_official_layout_loads_strictly_into_the_official_preset():
    ren = build_renderer("official")
    for seed, part in enumerate(["udpparsernet", "target_pose_encoder", "shader", "rgbadecodernet"]):
        state = _random_state(LAYOUT[part], seed)
        module = getattr(ren, part)
        module.load_state_dict(state, strict=True)
        name = next(iter(state))
        assert torch.equal(module.state_dict()[name], state[name])
        count = sum(p.numel() for p in module.parameters())
        assert count == sum(math.prod(s) for s in LAYOUT[part].values())
        assert round(count / 1e6, 2 if count < 1e6 else 1) == pytest.approx(PAPER_PARAMS_M[part])
    del ren
    det = build_detector("official")
    det.load_state_dict(_random_state(LAYOUT["udpparsernet"], 9), strict=True)


def test_file_round_trip_and_shared_parser(tmp_path):
    torch.manual_seed(0)
    ren = build_renderer("tiny", parser_decoder=True).eval()
    save_official(ren, tmp_path)
    det2, ren2 = load_official(tmp_path, preset="tiny", parser_decoder=True)
    assert det2 is ren2.udpparsernet
    g = torch.Generator().manual_seed(1)
    target = torch.rand(1, 4, 64, 64, generator=g)
    refs = torch.rand(1, 2, 4, 64, 64, generator=g)
    with torch.no_grad():
        assert torch.equal(ren(target, refs, None), ren2(target, refs, None))


def test_missing_file_is_named(tmp_path):
    torch.manual_seed(0)
    save_official(build_renderer("tiny", parser_decoder=True), tmp_path)
    (tmp_path / "shader.pth").unlink()
    with pytest.raises(UserError, match="missing shader.pth"):
        load_official(tmp_path, preset="tiny", parser_decoder=True)


def test_wrong_architecture_is_a_format_error_naming_the_file(tmp_path):
    torch.manual_seed(0)
    save_official(build_renderer("small", parser_decoder=True), tmp_path)
    with pytest.raises(FormatError) as err:
        load_official(tmp_path, preset="tiny", parser_decoder=True)
    assert "udpparsernet.pth" in str(err.value) and "does not match" in str(err.value)


def test_corrupt_and_unsafe_files(tmp_path):
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a zip and not a pickle")
    with pytest.raises(FormatError, match="junk.pth"):
        read_state_dict(bad)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"w": torch.zeros(1), "obj": Path("x")}, unsafe)  # needs pickle code: refused
    with pytest.raises(FormatError, match="unsafe.pth"):
        read_state_dict(unsafe)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module.a": torch.ones(2)}}, wrapped)
    assert list(read_state_dict(wrapped)) == ["a"]


def test_load_strict_reports_shape_mismatch(tmp_path):
    module = torch.nn.Linear(3, 2)
    with pytest.raises(FormatError, match="other shapes"):
        load_strict(module, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, tmp_path / "x.pth")


def _torchvision_resnet18_layout() -> dict[str, tuple[int, ...]]:
    """torchvision.models.resnet18().state_dict() names and shapes, written from its definition."""
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int):
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{k}"] = (c,)
        out[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    cin = 64
    for i, c in enumerate([64, 128, 256, 512], start=1):
        for j in range(2):
            p = f"layer{i}.{j}"
            out[f"{p}.conv1.weight"] = (c, cin if j == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            out[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if j == 0 and i > 1:
                out[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    out["fc.weight"] = (1000, 512)
    out["fc.bias"] = (1000,)
    return out


@pytest.mark.parametrize("norm,in_channels", [("batch", 3), ("instance", 3), ("instance", 4)])
def test_torchvision_resnet18_checkpoint_loads(norm, in_channels):
    g = torch.Generator().manual_seed(0)
    state = {
        k: (torch.randn(*s, generator=g) if s else torch.tensor(5))
        for k, s in _torchvision_resnet18_layout().items()
    }
    enc = ResNetEncoder("resnet18", in_channels=in_channels, width=64, norm=norm, pool="max")
    load_torchvision_resnet(enc, state)
    own = enc.state_dict()
    assert torch.equal(own["7.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert torch.equal(own["0.weight"][:, :3], state["conv1.weight"])
    if in_channels == 4:
        assert float(own["0.weight"][:, 3].abs().sum()) == 0.0
    key = "7.0.downsample.1.norm.weight" if norm == "instance" else "7.0.downsample.1.weight"
    assert torch.equal(own[key], state["layer4.0.downsample.1.weight"])
    assert enc(torch.rand(1, in_channels, 64, 64)).shape == (1, 512, 2, 2)


def test_official_file_names():
    names = ("udpparsernet.pth", "target_pose_encoder.pth", "shader.pth", "rgbadecodernet.pth")
    assert names == OFFICIAL_FILES
