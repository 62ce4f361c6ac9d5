"""conrmodel.checkpoint: the one path weights take in and out (find, read, save, filters, errors)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import torch

from conrdata.errors import FormatError, UserError
from conrmodel import checkpoint as ck
from conrmodel.inference.runner import CoNRInference, load_models
from conrmodel.models.factory import build_detector, build_renderer

ROOT = Path(__file__).resolve().parents[1]


def _ours(path: Path, **extra) -> Path:
    torch.manual_seed(0)
    nets = {"detector": build_detector("tiny").state_dict(), "renderer": build_renderer("tiny").state_dict()}
    config = {"model": {"detector": "tiny", "renderer": "tiny"}, "data": {"size": 64}}
    return ck.save({"format_version": 1, "step": 3, **nets, "config": config, **extra}, path)


def test_find_prefers_latest_last_final_then_the_newest(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    a, b = run / "checkpoints" / "step-1.pt", run / "checkpoints" / "step-2.pt"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    os.utime(a, (time.time() + 10, time.time() + 10))  # newest by time, though lower by name
    assert ck.find_checkpoint(run) == a
    for name in ("final.pt", "last.pt", "latest.pt"):  # each outranks the ones before it
        (run / "checkpoints" / name).write_bytes(b"x")
        assert ck.find_checkpoint(run) == run / "checkpoints" / name
    assert ck.find_checkpoint(b) == b
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "model.pt").write_bytes(b"x")
    assert ck.find_checkpoint(flat) == flat / "model.pt"
    with pytest.raises(UserError, match="no checkpoint found.*official release"):
        ck.find_checkpoint(tmp_path / "run" / "checkpoints" / ".." / ".." / "flat" / "..")
    with pytest.raises(UserError, match="weights not found"):
        ck.find_checkpoint(tmp_path / "nowhere")


def test_read_errors_are_one_line_naming_the_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not torch")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"w": torch.zeros(1), "obj": Path("x")}, unsafe)  # would need pickled code: refused
    for path, what in ((junk, "checkpoint"), (unsafe, "weights file")):
        with pytest.raises(FormatError) as err:
            ck.read_object(path, what)
        assert str(err.value).startswith(f"{path}: cannot read {what} (") and "\n" not in str(err.value)
    with pytest.raises(UserError, match="weights file not found"):
        ck.read_state_dict(tmp_path / "absent.pth")
    torch.save({"a": 1}, tmp_path / "notensor.pth")
    with pytest.raises(FormatError, match="'a' is not a tensor"):
        ck.read_state_dict(tmp_path / "notensor.pth")


def test_module_prefix_wrappers_and_filters(tmp_path):
    vgg = {"module.features.0.weight": torch.ones(1), "module.classifier.0.weight": torch.ones(1)}
    torch.save({"model": vgg}, tmp_path / "vgg.pth")
    got = ck.read_state_dict(tmp_path / "vgg.pth", ck.torchvision_features_filter)
    assert list(got) == ["features.0.weight"]
    torch.save({"conv1.weight": torch.ones(1), "fc.weight": torch.ones(1)}, tmp_path / "r.pth")
    assert list(ck.read_state_dict(tmp_path / "r.pth", ck.torchvision_resnet_filter)) == ["conv1.weight"]
    lin = {"lin0.model.1.weight": torch.ones(1), "lin1.weight": torch.zeros(1), "meta": torch.ones(1)}
    torch.save(lin, tmp_path / "lpips.pth")
    assert sorted(ck.read_state_dict(tmp_path / "lpips.pth", ck.lpips_linear_filter)) == ["lin0", "lin1"]


def test_our_checkpoint_checks_version_and_strips_ddp_prefix(tmp_path):
    path = _ours(tmp_path / "a.pt")
    raw = torch.load(path, weights_only=True)
    raw["renderer"] = {f"module.{k}": v for k, v in raw["renderer"].items()}
    torch.save(raw, tmp_path / "ddp.pt")
    ckpt = ck.load_checkpoint(tmp_path / "ddp.pt")
    assert not any(k.startswith("module.") for k in ckpt["renderer"])
    models = load_models(tmp_path / "ddp.pt")
    assert models.source == "checkpoint" and models.train_size == 64 and models.preprocess == "ours"
    raw["format_version"] = 99
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(FormatError, match="format 99 is newer"):
        load_models(tmp_path / "future.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(FormatError, match="not a CoNR training checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")


def test_a_checkpoint_records_its_preprocessing(tmp_path):
    _ours(tmp_path / "official.pt", preprocess="official")
    models = load_models(tmp_path / "official.pt")
    assert models.preprocess == "official"
    engine = CoNRInference.from_weights(tmp_path / "official.pt", device="cpu")
    assert engine.preprocess == "official" and engine.margin == 1.0
    _ours(tmp_path / "odd.pt", preprocess="bicubic")
    with pytest.raises(FormatError, match="unknown preprocess 'bicubic'"):
        load_models(tmp_path / "odd.pt")


def test_train_writes_preprocess_and_resumes_through_checkpoint(tmp_path):
    from conrmodel.data.stream import DataPosition
    from conrmodel.train.config import load_config
    from conrmodel.train.loop import DistInfo, build_optimizer, build_system, resolve_config, save_checkpoint

    cfg = load_config("tiny", None, ["data.size=64"])
    torch.manual_seed(0)
    system = build_system(cfg)
    opt, sched = build_optimizer(system, cfg)
    path = save_checkpoint(tmp_path, 7, system, opt, sched, None, cfg, DataPosition(1), DistInfo())
    latest = tmp_path / "checkpoints" / "latest.pt"
    assert path.is_file() and latest.is_file() and os.path.samefile(path, latest)
    assert ck.load_checkpoint(latest)["preprocess"] == "ours"
    _, resumed = resolve_config(tmp_path, resume=True)
    assert resumed["step"] == 7


def test_torch_load_is_called_only_in_checkpoint_py():
    callers = []
    for folder in ("conrdata", "conrmodel", "pipelines", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            # a call, not a mention in ``double backticks``
            if re.search(r"(?<!`)\btorch\.load\(", path.read_text()) and path.name != "checkpoint.py":
                callers.append(str(path.relative_to(ROOT)))
    assert callers == []
