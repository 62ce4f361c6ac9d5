"""One shard-list rule for iter_clips and the training stream (conrdata.dataset.shardlist)."""

from pathlib import Path

import pytest

from conrdata.dataset import expand_shards, shard_paths
from conrdata.errors import UserError
from conrdata.testing.toydata import write_toy_dataset
from conrmodel.data.stream import expand_urls


def _touch(folder: Path, *names: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")
    return [str(folder / n) for n in names]


@pytest.fixture(scope="module")
def toy_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    write_toy_dataset(out, characters=3, clips=2, images=2, val_characters=1, max_shard_clips=2)
    return out


def test_out_dir_reads_its_manifest_and_split(toy_out):
    listed = expand_shards(toy_out)
    assert listed and all(Path(u).parent == toy_out / "shards" for u in listed)
    stray = _touch(toy_out / "shards", "train-999999.tar")[0]  # a file the manifest does not list
    try:
        assert stray not in expand_shards(toy_out)
        train = expand_shards(toy_out, "train")
        assert train and all(Path(u).name.startswith("train-") for u in train)
        assert set(train) < set(listed)
        # Both readers agree on the same spec.
        assert [str(p) for p in shard_paths(toy_out, "train")] == train == expand_urls(toy_out, "train")
    finally:
        Path(stray).unlink()


def test_folders_patterns_and_lists(tmp_path):
    a, b, v = _touch(tmp_path, "train-000000.tar", "train-000001.tar", "val-000000.tar")
    assert expand_shards(tmp_path) == [a, b, v]
    assert expand_shards(tmp_path, "val") == [v]
    assert expand_shards(str(tmp_path / "train-{000000..000001}.tar")) == [a, b]
    assert expand_shards(str(tmp_path / "train-*.tar")) == [a, b]
    assert expand_shards(f"{v}::{a}") == [v, a]
    assert expand_shards([Path(v), a]) == [v, a]
    assert expand_shards(v, "train") == [v]  # named explicitly: read as named
    remote = "pipe:curl -s http://host/train-{0..1}.tar"
    assert expand_shards(remote) == ["pipe:curl -s http://host/train-0.tar", "pipe:curl -s http://host/train-1.tar"]


def test_what_names_nothing_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no shard matches"):
        expand_shards(str(tmp_path / "x-*.tar"))
    with pytest.raises(UserError, match="shard not found"):
        expand_shards(str(tmp_path / "x-{000000..000001}.tar"))
    with pytest.raises(UserError, match="no .tar shards"):
        expand_shards(tmp_path)
    _touch(tmp_path, "val-000000.tar")
    assert expand_shards(tmp_path, "train") == []
    with pytest.raises(UserError, match="no train shards"):
        expand_urls(tmp_path, "train")
    with pytest.raises(UserError, match="remote"):
        shard_paths("http://host/train-0.tar")
