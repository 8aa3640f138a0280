"""glTF export: the .glb re-read with pygltflib (skeleton and animation against the project's FK) and trimesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib
import pytest
import trimesh
from click.testing import CliRunner
from scipy.spatial.transform import Rotation

from omniges.cli import main
from omniges.data.beat2 import read_motion
from omniges.data.kinematics import JOINT_NAMES, SMPLX_PARENTS, forward_kinematics
from omniges.data.skinned_body import default_body
from omniges.export.gltf import ANIMATION_NAME, write_glb

CLIP = Path(__file__).parent / "fixtures" / "beat2_real" / "smplxflame_30" / "2_scott_0_1_1.npz"


def _accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """An accessor's data as a float/int array (count, components)."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    dtype = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_SHORT: np.uint16,
             pygltflib.UNSIGNED_INT: np.uint32}[accessor.componentType]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[accessor.type]
    blob = gltf.binary_blob()
    start = view.byteOffset + (accessor.byteOffset or 0)
    return np.frombuffer(blob, dtype, accessor.count * width, start).reshape(accessor.count, width)


def gltf_world_joints(path: Path, frame: int) -> tuple[list[str], np.ndarray]:
    """Joint names and world positions (J, 3) at `frame`, composing the nodes' animated local transforms."""
    gltf = pygltflib.GLTF2().load(str(path))
    skin = gltf.skins[0]
    local = {n: (np.array(gltf.nodes[n].translation or (0, 0, 0), float), np.eye(3)) for n in skin.joints}
    animation = next(a for a in gltf.animations if a.name == ANIMATION_NAME)
    for channel in animation.channels:
        value = _accessor(gltf, animation.samplers[channel.sampler].output)[frame].astype(float)
        translation, rotation = local[channel.target.node]
        if channel.target.path == "rotation":
            local[channel.target.node] = (translation, Rotation.from_quat(value).as_matrix())
        else:
            local[channel.target.node] = (value, rotation)
    parent = {child: node for node in skin.joints for child in (gltf.nodes[node].children or [])}
    world: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for node in skin.joints:  # parents come before children in SMPL-X order
        translation, rotation = local[node]
        if node in parent:
            p_pos, p_rot = world[parent[node]]
            world[node] = (p_pos + p_rot @ translation, p_rot @ rotation)
        else:
            world[node] = (translation, rotation)
    return [gltf.nodes[n].name for n in skin.joints], np.array([world[n][0] for n in skin.joints])


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    data = read_motion(CLIP)
    return {"poses": data["poses"][:60], "trans": data["trans"][:60]}


def test_glb_skeleton_and_animation_match_fk(tmp_path: Path, real: dict[str, np.ndarray]) -> None:
    path = write_glb(tmp_path / "clip.glb", real["poses"], real["trans"])
    body = default_body()
    fk = forward_kinematics(body.skinning_poses(real["poses"]), real["trans"], body.rest_joints)
    for frame in (0, 37, 59):
        names, joints = gltf_world_joints(path, frame)
        assert names == list(JOINT_NAMES)
        assert np.abs(joints - fk[frame]).max() <= 1e-4
    gltf = pygltflib.GLTF2().load(str(path))
    assert gltf.asset.version == "2.0" and len(gltf.skins[0].joints) == 55
    times = _accessor(gltf, gltf.animations[0].samplers[0].input)[:, 0]
    assert len(times) == 60 and np.allclose(np.diff(times), 1 / 30, atol=1e-6)
    assert [gltf.nodes[c].name for c in gltf.nodes[1 + 15].children] == ["jaw", "left_eye_smplhf", "right_eye_smplhf"]
    assert SMPLX_PARENTS[22] == 15


def test_glb_jaw_opens_the_mouth_and_body_is_on_the_skeleton(real: dict[str, np.ndarray]) -> None:
    """The skinned mesh follows its joints: closed vs open jaw moves only the mouth's lower half down."""
    body = default_body()
    poses = np.zeros((2, 165))
    poses[1, 66] = 0.3  # jaw open
    skin = body.skin_matrices(poses)
    closed, opened = body.posed_vertices(skin[0]), body.posed_vertices(skin[1])
    moved = np.linalg.norm(opened - closed, axis=1) > 1e-6
    assert moved.sum() > 0 and (body.joints[moved, 0] == 22).all()
    assert (opened[moved, 1] < closed[moved, 1]).all()
    # the bound mesh at the zero pose is the mesh itself, and the hands' joints lie inside the figure's bounds
    assert np.abs(closed - body.vertices).max() < 1e-5 or body.hand_mean.any()
    assert (body.rest_joints.min(axis=0) >= body.vertices.min(axis=0) - 0.01).all()


def test_glb_reads_in_trimesh(tmp_path: Path, real: dict[str, np.ndarray]) -> None:
    path = write_glb(tmp_path / "clip.glb", real["poses"][:5], real["trans"][:5])
    scene = trimesh.load(str(path), force="scene")
    mesh = next(iter(scene.geometry.values()))
    body = default_body()
    assert len(mesh.vertices) == len(body.vertices) and len(mesh.faces) == len(body.faces)
    assert 1.5 < np.ptp(mesh.vertices[:, 1]) < 2.0  # a standing adult, metres, y up


@pytest.mark.parametrize("case", ["nan", "shape", "empty", "trans"])
def test_glb_bad_motion_is_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    poses, trans = np.zeros((4, 165)), np.zeros((4, 3))
    if case == "nan":
        poses[2, 10] = np.nan
    elif case == "shape":
        poses = np.zeros((4, 156))
    elif case == "empty":
        poses, trans = np.zeros((0, 165)), np.zeros((0, 3))
    else:
        trans = np.zeros((3, 3))
    with pytest.raises(ValueError) as error:
        write_glb(tmp_path / "bad.glb", poses, trans)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_glb_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "clip.glb"
    result = runner.invoke(main, ["export", str(CLIP), "--glb", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"glTF"
    result = runner.invoke(main, ["export", str(CLIP), "--glb", str(tmp_path / "missing" / "clip.glb")])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    bad = tmp_path / "nan.npz"
    data = dict(np.load(CLIP))
    data["poses"] = data["poses"][:10].copy()
    data["trans"], data["expressions"] = data["trans"][:10], data["expressions"][:10]
    data["poses"][3, 5] = np.nan
    np.savez(bad, **data)
    result = runner.invoke(main, ["export", str(bad), "--glb", str(tmp_path / "nan.glb")])
    assert result.exit_code != 0 and "NaN" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "nan.glb").exists()
