"""EXR UDPs through the openexr package: round trips, channel conventions, axis orders, guards, errors."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest

from conrdata.dataset import write_official_udp
from conrdata.errors import FormatError
from conrdata.udp import AXIS_ORDERS, read_official_udp, read_udp_file, to_official
from conrmodel.inference.udp_io import iter_pose_frames


def _udp(h: int = 24, w: int = 20, seed: int = 0) -> np.ndarray:
    """Our UDP: smooth random landmarks inside an ellipse, exactly 0 outside."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    inside = ((y - h / 2) / (h * 0.4)) ** 2 + ((x - w / 2) / (w * 0.3)) ** 2 <= 1
    udp = np.zeros((h, w, 4), np.float32)
    udp[..., :3] = rng.random((h, w, 3), dtype=np.float32)
    udp[..., 3] = inside
    udp[..., :3] *= udp[..., 3:]
    return udp


def _write(path, channels: dict[str, np.ndarray], compression=OpenEXR.ZIP_COMPRESSION) -> None:
    header = {"compression": compression, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {k: np.ascontiguousarray(v) for k, v in channels.items()}) as f:
        f.write(str(path))


@pytest.mark.parametrize("order", AXIS_ORDERS)
def test_float_round_trip_is_bit_identical(tmp_path, order):
    udp = _udp()
    path = write_official_udp(udp, tmp_path / "pose.exr", order, format="exr")
    with OpenEXR.File(str(path), separate_channels=True) as f:
        assert sorted(f.channels()) == ["A", "B", "G", "R"]
        assert f.channels()["R"].pixels.dtype == np.float32
    assert np.array_equal(read_official_udp(path, order), to_official(udp))
    back = read_udp_file(path, order)
    assert back.dtype == np.float32 and np.array_equal(back.view(np.uint32), udp.view(np.uint32))
    # read in another order, the axes move
    other = next(o for o in AXIS_ORDERS if o != order)
    assert not np.array_equal(read_udp_file(path, other), udp)


def test_half_round_trip_is_within_half_precision(tmp_path):
    udp = _udp(seed=1)
    path = write_official_udp(udp, tmp_path / "pose.exr", format="exr", half=True)
    with OpenEXR.File(str(path), separate_channels=True) as f:
        assert f.channels()["G"].pixels.dtype == np.float16
    back = read_udp_file(path)
    assert np.array_equal(back[..., 3], udp[..., 3])
    assert np.abs(back - udp).max() <= 2.0**-11  # half has an 11-bit significand: [0.5, 1) steps 2^-11
    assert np.abs(back - udp).max() > 0  # it really was stored as half


@pytest.mark.parametrize("compression", [OpenEXR.NO_COMPRESSION, OpenEXR.RLE_COMPRESSION,
                                         OpenEXR.ZIPS_COMPRESSION, OpenEXR.PIZ_COMPRESSION])
def test_lossless_compressions_written_by_openexr(tmp_path, compression):
    official = to_official(_udp(seed=2))
    _write(tmp_path / "p.exr", {c: official[..., i] for i, c in enumerate("RGBA")}, compression)
    assert np.array_equal(read_official_udp(tmp_path / "p.exr"), official)


def test_named_axes_occupancy_names_and_layer_prefixes(tmp_path):
    udp = _udp(seed=3)
    official = to_official(udp)  # XYZ order
    soft = official.copy()
    soft[..., 3] *= 0.75  # soft occupancy is kept as stored by the official-form reader
    x, y, z, occ = (soft[..., i] for i in range(4))
    cases = {
        "xyz_occ.exr": {"X": x, "Y": y, "Z": z, "occupancy": occ},
        "lower.exr": {"x": x, "y": y, "z": z, "alpha": occ},
        "blender.exr": {"ViewLayer.UDP.X": x, "ViewLayer.UDP.Y": y, "ViewLayer.UDP.Z": z,
                        "ViewLayer.UDP.A": occ},
        "layer_rgba.exr": {"pose.R": x, "pose.G": y, "pose.B": z, "pose.A": occ},
        # a beauty pass beside the UDP layer: the layer named for the pose wins
        "two_layers.exr": {"Combined.R": z, "Combined.G": z, "Combined.B": z, "Combined.A": occ,
                           "UDP.R": x, "UDP.G": y, "UDP.B": z, "UDP.A": occ},
    }
    for name, channels in cases.items():
        _write(tmp_path / name, channels)
        assert np.array_equal(read_official_udp(tmp_path / name), soft), name
    # named axes are taken by name: the axis order applies only to positional R, G, B
    assert np.array_equal(read_official_udp(tmp_path / "xyz_occ.exr", "ZXY"), soft)
    zxy = to_official(udp, "ZXY")
    _write(tmp_path / "zxy.exr", {c: zxy[..., i] for i, c in enumerate("RGBA")})
    assert np.array_equal(read_official_udp(tmp_path / "zxy.exr", "ZXY"), official)
    assert np.array_equal(read_udp_file(tmp_path / "zxy.exr", "ZXY"), udp)
    # binarised for our encoding: 0.75 > 0.5 stays on the body, xyz then no longer scaled by it
    assert np.array_equal(read_udp_file(tmp_path / "xyz_occ.exr")[..., 3], udp[..., 3])


def test_an_rgba_array_written_in_one_piece_reads(tmp_path):
    official = to_official(_udp(seed=4))
    _write(tmp_path / "rgba.exr", {"RGBA": official})
    assert np.array_equal(read_official_udp(tmp_path / "rgba.exr"), official)


def test_wrong_channels_are_a_format_error(tmp_path):
    plane = np.zeros((8, 8), np.float32)
    _write(tmp_path / "rgb.exr", {"R": plane, "G": plane, "B": plane})
    with pytest.raises(FormatError, match=r"rgb\.exr.*R, G, B, A or X, Y, Z"):
        read_official_udp(tmp_path / "rgb.exr")
    _write(tmp_path / "two.exr", {f"{layer}.{c}": plane for layer in ("left", "right") for c in "RGBA"})
    with pytest.raises(FormatError, match="several layers"):
        read_official_udp(tmp_path / "two.exr")
    _write(tmp_path / "uint.exr", {c: plane.astype(np.uint32) for c in "RGBA"})
    with pytest.raises(FormatError, match="half or float"):
        read_official_udp(tmp_path / "uint.exr")


def test_truncated_corrupt_and_oversized_files(tmp_path, capfd):
    path = write_official_udp(_udp(64, 48, seed=5), tmp_path / "good.exr", format="exr")
    data = path.read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) - 200])
    (tmp_path / "junk.exr").write_bytes(b"\x76\x2f\x31\x01" + b"\xff" * 64)
    (tmp_path / "empty.exr").write_bytes(b"")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the compressed pixel data
    (tmp_path / "flipped.exr").write_bytes(bytes(flipped))
    for name in ("cut.exr", "junk.exr", "empty.exr", "flipped.exr"):
        with pytest.raises(FormatError) as err:
            read_official_udp(tmp_path / name)
        line = str(err.value)
        assert line.startswith(str(tmp_path / name)) and "\n" not in line and "EXR" in line
    with pytest.raises(FormatError, match="over the limit of 3000"):
        read_official_udp(path, max_pixels=3000)  # 64 x 48 = 3072 pixels, refused before decoding
    assert read_official_udp(path, max_pixels=3072).shape == (64, 48, 4)
    assert capfd.readouterr() == ("", "")  # the library's own messages are not printed


def test_exr_folder_is_a_pose_source(tmp_path):
    udps = [_udp(seed=s) for s in range(3)]
    for i, udp in enumerate(udps):
        write_official_udp(udp, tmp_path / f"f{i}.exr", "XZY", format="exr")
    frames = list(iter_pose_frames(tmp_path, axis_order="XZY"))
    assert [f.name for f in frames] == ["f0", "f1", "f2"]
    for frame, udp in zip(frames, udps):
        assert np.array_equal(frame.udp, udp) and np.array_equal(frame.official, to_official(udp))


def test_npz_size_guard_reads_the_header_only(tmp_path):
    np.savez_compressed(tmp_path / "big.npz", i=np.zeros((100, 90, 4), np.float32))
    with pytest.raises(FormatError, match=r"90x100 = 9000 pixels, over the limit of 8999"):
        read_official_udp(tmp_path / "big.npz", max_pixels=8999)
    assert read_official_udp(tmp_path / "big.npz", max_pixels=9000).shape == (100, 90, 4)
