"""Evaluation: deterministic view choice, metrics for n = 1 and n = 4, LPIPS from local files, grid PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conrdata.errors import UserError
from conrmodel.config import load_config
from conrmodel.data import DataPosition
from conrmodel.evaluate import eval_views, evaluate, load_models, run_eval
from conrmodel.toydata import write_toy_dataset
from conrmodel.train import DistInfo, build_optimizer, build_system, save_checkpoint
from conrmodel.vgg import VGGFeatures

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def val_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("val")
    return write_toy_dataset(
        out, characters=3, clips=1, images=3, size=48, val_characters=2, unlabeled_characters=1
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run dir holding a checkpoint of an untrained tiny model."""
    run = tmp_path_factory.mktemp("run")
    cfg = load_config("tiny", None, ["data.size=64"])
    torch.manual_seed(0)
    system = build_system(cfg)
    opt, sched = build_optimizer(system, cfg)
    save_checkpoint(run, 5, system, opt, sched, None, cfg, DataPosition(1), DistInfo())
    return run


def test_eval_views_rules():
    assert eval_views(["a", "b", "c", "d", "e"], 4) == (4, [0, 1, 2, 3], True)
    assert eval_views(["a", "b", "c"], 4) == (2, [0, 1, 0, 1], True)
    assert eval_views(["a", "b", "b"], 1) == (2, [0], True)
    assert eval_views(["a"], 2) == (0, [0, 0], False)


def _lpips_files(tmp_path):
    torch.manual_seed(0)
    torch.save(VGGFeatures("vgg16").state_dict(), tmp_path / "vgg16.pth")
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate([64, 128, 256, 512, 512])}
    torch.save(lin, tmp_path / "lin.pth")
    return str(tmp_path / "vgg16.pth"), str(tmp_path / "lin.pth")


def test_run_eval_json_and_grid(tmp_path, val_out, run_dir):
    res = run_eval(
        run_dir, val_out, tmp_path / "ev", lpips_weights=_lpips_files(tmp_path), views=(1, 4), progress=False
    )
    assert res["step"] == 5 and res["clips"] == 2 and res["size"] == 64
    for n in ("n1", "n4"):
        assert 0 < res["views"][n]["photo"] < 1 and res["views"][n]["lpips"] > 0
    on_disk = json.loads((tmp_path / "ev" / "metrics-0000005.json").read_text())
    assert on_disk["views"] == res["views"]
    grid = np.asarray(Image.open(res["grid"]))
    # 2 clips x 2 view counts = 4 rows; the widest row has 4 refs + UDP + prediction + GT = 7 tiles
    assert grid.shape[0] == 4 * 66 + 2 and grid.shape[1] == 7 * 66 + 2


def test_evaluate_is_deterministic_and_skips_unlabeled(val_out, run_dir):
    det, ren, _ = load_models(run_dir)
    a = evaluate(det, ren, val_out, views=(1,), size=64)
    b = evaluate(det, ren, val_out, views=(1,), size=64)
    assert a == b and a["skipped_unlabeled"] == 0
    # the unlabeled character is in train: evaluating there counts it as skipped
    train_shards = sorted((val_out / "shards").glob("train-*.tar"))
    with pytest.raises(UserError, match="no labelled clips"):
        evaluate(det, ren, train_shards, views=(1,), size=64)


def test_load_models_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        load_models(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_models(tmp_path / "bad.pt")
