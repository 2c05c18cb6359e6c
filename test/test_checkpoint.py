"""Checkpoint loading: published-format files, our own format, and files that must be refused."""
from __future__ import annotations

import os
import pickle
import re

import pytest
import torch
from safetensors.torch import save_file

from conftest import shared_file
from parity_fixture import load_small_fixture
from moe3d_ros.io.checkpoint import (
    CheckpointError,
    load_model,
    load_vggt_weights,
    read_state_dict,
    save_model,
)
from moe3d_ros.model import VGGT, preset


def _parse_key_list(path):
    shapes = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _dtype, _numel = line.split("\t")
        shapes[key] = tuple(int(x) for x in re.findall(r"\d+", shape))
    return shapes


def test_vggt_1b_keys_and_shapes_equal_the_published_list():
    published = _parse_key_list(shared_file("reference/vggt1b_state_dict_keys.txt"))
    assert len(published) == 1797
    with torch.device("meta"):
        model = VGGT(preset("vggt_1b").with_heads(("camera", "depth", "point")))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    without_track = {k: v for k, v in published.items() if not k.startswith("track_head.")}
    assert ours == without_track
    n_params = sum(v.numel() for v in model.state_dict().values())
    track_params = sum(torch.Size(s).numel() for k, s in published.items() if k.startswith("track_head."))
    assert n_params + track_params == 1_256_537_516


@pytest.fixture(scope="module")
def tiny_state():
    return load_small_fixture()["state_dict"]


def _tiny(heads=("camera", "depth")):
    return VGGT(preset("tiny").with_heads(heads))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_good_checkpoint_loads_and_drops_unbuilt_heads(tmp_path, tiny_state, suffix):
    path = tmp_path / f"model{suffix}"
    state = dict(tiny_state)
    state["track_head.fnet.weight"] = torch.zeros(2, 2)  # the published file carries a track head
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = _tiny()
    report = load_vggt_weights(model, path)
    assert set(report.dropped) == {"point", "track"}
    assert all(k.startswith("point_head.") for k in report.dropped["point"])
    assert report.dropped["track"] == ["track_head.fnet.weight"]
    assert "dropped" in report.summary() and "point" in report.summary()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, tiny_state[key], rtol=0, atol=0)


def test_load_into_meta_model_assigns_weights(tmp_path, tiny_state):
    path = tmp_path / "model.pt"
    torch.save(tiny_state, path)
    with torch.device("meta"):
        model = _tiny(("camera", "depth", "point"))
    load_vggt_weights(model, path)
    assert not any(p.is_meta for p in model.parameters())
    torch.testing.assert_close(model.aggregator.camera_token, tiny_state["aggregator.camera_token"])


def test_truncated_file_is_a_clear_error(tmp_path, tiny_state):
    path = tmp_path / "model.pt"
    torch.save(tiny_state, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_state_dict(path)


def test_truncated_safetensors_is_a_clear_error(tmp_path, tiny_state):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        read_state_dict(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pt")


def test_mis_keyed_checkpoint_names_the_keys(tmp_path, tiny_state):
    state = dict(tiny_state)
    state["aggregator.frame_blocks.0.attn.qkv.weights"] = state.pop("aggregator.frame_blocks.0.attn.qkv.weight")
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_vggt_weights(_tiny(), path)
    text = str(err.value)
    assert "1 missing keys: aggregator.frame_blocks.0.attn.qkv.weight" in text
    assert "1 unexpected keys: aggregator.frame_blocks.0.attn.qkv.weights" in text


def test_mis_shaped_checkpoint_names_the_key_and_shapes(tmp_path, tiny_state):
    state = dict(tiny_state)
    state["depth_head.norm.weight"] = torch.zeros(7)
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"depth_head.norm.weight: file \(7,\) vs model \(128,\)"):
        load_vggt_weights(_tiny(), path)


def test_missing_head_weights_are_an_error(tmp_path, tiny_state):
    state = {k: v for k, v in tiny_state.items() if not k.startswith("camera_head.")}
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="missing keys: camera_head"):
        load_vggt_weights(_tiny(), path)


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_refused_without_running(tmp_path, tiny_state, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    payload = {**{k: v for k, v in list(tiny_state.items())[:3]}, "depth_head.norm.weight": _Payload(marker)}
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(path)
    assert not marker.exists()
    # The crafted file really is dangerous: a plain unpickle runs the payload.
    if container == "raw_pickle":
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_non_state_dict_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"epoch": 3, "weights": [1, 2]}, path)
    with pytest.raises(CheckpointError, match="not a plain state_dict"):
        read_state_dict(path)


def test_unknown_suffix_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint type"):
        read_state_dict(path)


def test_own_checkpoint_round_trip(tmp_path, tiny_state):
    model = _tiny(("camera", "depth", "point"))
    model.load_state_dict(tiny_state)
    folder = save_model(model, tmp_path / "ckpt", metadata={"note": "round trip"})
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    loaded, metadata = load_model(folder)
    assert metadata == {"note": "round trip"}
    assert loaded.config == model.config
    images = torch.rand(2, 3, 56, 70)
    with torch.no_grad():
        a = model.eval()(images, heads=("camera", "depth", "point"))
        b = loaded(images, heads=("camera", "depth", "point"))
    torch.testing.assert_close(a.depth, b.depth, rtol=0, atol=0)
    torch.testing.assert_close(a.pose_enc, b.pose_enc, rtol=0, atol=0)


def test_own_checkpoint_with_bad_config_is_a_clear_error(tmp_path, tiny_state):
    model = _tiny()
    folder = save_model(model, tmp_path / "ckpt")
    config = (folder / "config.json").read_text().replace('"embed_dim": 64', '"embed_dims": 64')
    (folder / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match="unknown keys \\['embed_dims'\\]"):
        load_model(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json does not exist"):
        load_model(folder)


def test_hostile_files_get_errors_that_say_what_is_wrong(tmp_path):
    import io
    import struct
    import zipfile

    from moe3d_ros.io.checkpoint import load_any

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="the file is empty"):
        read_state_dict(empty)
    broken_zip = io.BytesIO()
    with zipfile.ZipFile(broken_zip, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02(")
    archive_path = tmp_path / "archive.pt"
    archive_path.write_bytes(broken_zip.getvalue())
    with pytest.raises(CheckpointError, match=r"corrupt or truncated checkpoint \(\w+"):
        read_state_dict(archive_path)
    header = tmp_path / "header.safetensors"
    header.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors file"):
        read_state_dict(header)
    folder = save_model(_tiny(), tmp_path / "no_config")
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="a folder without config.json"):
        load_any(folder, "tiny")
