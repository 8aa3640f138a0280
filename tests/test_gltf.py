"""glTF export: the .glb re-read with pygltflib (skeleton and animation against the project's FK), trimesh, Blender."""

from __future__ import annotations

import json
import shutil
import subprocess
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
from omniges.export import BlenderMissingError, write_fbx
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


BLENDER_GLTF_CHECK = '''
import json, sys
import bpy
import numpy
if "bool" not in vars(numpy):  # Debian's Blender 3.4 glTF add-on still says np.bool (gone since numpy 1.24)
    numpy.bool = bool
source, expected = sys.argv[-2], json.load(open(sys.argv[-1]))
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = 30
if source.endswith(".fbx"):
    bpy.ops.import_scene.fbx(filepath=source)
else:
    bpy.ops.import_scene.gltf(filepath=source)
arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
start = int(round(arm.animation_data.action.frame_range[0]))
worst = 0.0
for frame, joints in expected["frames"].items():
    bpy.context.scene.frame_set(start + int(frame))
    for name, (x, y, z) in zip(expected["names"], joints):
        head = arm.matrix_world @ arm.pose.bones[name].head
        worst = max(worst, abs(head[0] - x), abs(head[1] + z), abs(head[2] - y))  # Blender is z up: (x, -z, y)
meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
print(f"RESULT {len(arm.pose.bones)} {len(meshes)} {worst}")
'''


def _blender_check(tmp_path: Path, source: Path, real: dict[str, np.ndarray]) -> tuple[int, int, float]:
    """Bone count, mesh count and the worst joint distance to FK at three frames, as Blender imports `source`."""
    body = default_body()
    fk = forward_kinematics(body.skinning_poses(real["poses"]), real["trans"], body.rest_joints)
    expected = tmp_path / "fk.json"
    expected.write_text(json.dumps({"names": list(JOINT_NAMES),
                                    "frames": {str(f): fk[f].tolist() for f in (0, 13, 29)}}))
    script = tmp_path / "check.py"
    script.write_text(BLENDER_GLTF_CHECK)
    run = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(script), "--", str(source),
                          str(expected)], capture_output=True, text=True, timeout=600)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, run.stdout[-2000:] + run.stderr[-2000:]
    bones, meshes, worst = line.split()[1:]
    return int(bones), int(meshes), float(worst)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (make blender)")
def test_blender_imports_the_glb_and_the_fbx(tmp_path: Path, real: dict[str, np.ndarray]) -> None:
    """Blender's glTF importer: 55 bones whose heads follow the FK; the FBX written through Blender re-imports."""
    poses, trans = real["poses"][:30], real["trans"][:30]
    glb = write_glb(tmp_path / "clip.glb", poses, trans)
    bones, meshes, worst = _blender_check(tmp_path, glb, {"poses": poses, "trans": trans})
    assert (bones, meshes) == (55, 1) and worst < 1e-4
    fbx = write_fbx(tmp_path / "clip.fbx", poses, trans)
    bones, meshes, worst = _blender_check(tmp_path, fbx, {"poses": poses, "trans": trans})
    assert bones == 55 and meshes == 1 and worst < 1e-3


def test_fbx_without_blender_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("OMNIGES_BLENDER", raising=False)
    with pytest.raises(BlenderMissingError, match="blender"):
        write_fbx(tmp_path / "clip.fbx", np.zeros((2, 165)))
    result = CliRunner().invoke(main, ["export", str(CLIP), "--fbx", str(tmp_path / "clip.fbx")])
    assert result.exit_code == 1 and "`blender`" in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
