"""Export: the BVH re-read by a PyPI parser (bvhio) and by Blender matches the project's FK; npz; the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import bvhio
import numpy as np
import pytest
from click.testing import CliRunner

from omniges.cli import main
from omniges.data.beat2 import read_motion
from omniges.data.kinematics import JOINT_NAMES, forward_kinematics
from omniges.export import bvh_joints, write_bvh, write_npz

CLIP = Path(__file__).parent / "fixtures" / "beat2_real" / "smplxflame_30" / "2_scott_0_1_1.npz"


def bvh_world_joints(path: Path) -> tuple[list[str], np.ndarray]:
    """Joint names and world positions (T, J, 3) of every frame, as bvhio reads the file."""
    root = bvhio.readAsHierarchy(str(path))
    layout = [joint for joint, _, _ in root.layout()]
    frames = root.getKeyframeRange()[1] + 1
    positions = np.empty((frames, len(layout), 3))
    for frame in range(frames):
        root.loadPose(frame)
        positions[frame] = [np.array(joint.PositionWorld) for joint in layout]
    return [joint.Name for joint in layout], positions


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    data = read_motion(CLIP)
    return {key: value[:45] for key, value in data.items() if key != "betas"} | {"betas": data["betas"]}


def test_bvh_joints_match_fk_on_real_motion(tmp_path: Path, real: dict[str, np.ndarray]) -> None:
    path = write_bvh(tmp_path / "clip.bvh", real["poses"], real["trans"])
    names, positions = bvh_world_joints(path)
    assert len(names) == 53 and "jaw" in names and "left_eye_smplhf" not in names  # body + hands + jaw
    assert names == [JOINT_NAMES[j] for j in bvh_joints()]
    fk = forward_kinematics(real["poses"], real["trans"])[:, [JOINT_NAMES.index(n) for n in names]]
    assert len(positions) == len(real["poses"])
    assert np.abs(positions - fk).max() < 1e-4
    container = bvhio.readAsBvh(str(path))
    assert container.FrameCount == 45 and container.FrameTime == pytest.approx(1 / 30)


def test_bvh_without_jaw_and_large_rotations(tmp_path: Path) -> None:
    """Angles past gimbal lock (x = 90 deg) and near pi still round-trip through the Euler channels."""
    poses = np.random.default_rng(0).normal(0.0, 1.2, (6, 165))
    poses[0, 3 * 16:3 * 16 + 3] = (np.pi / 2, 0.0, 0.0)
    trans = np.random.default_rng(1).normal(0.0, 1.0, (6, 3))
    names, positions = bvh_world_joints(write_bvh(tmp_path / "wild.bvh", poses, trans, jaw=False))
    assert len(names) == 52 and "jaw" not in names
    fk = forward_kinematics(poses, trans)[:, [JOINT_NAMES.index(n) for n in names]]
    assert np.abs(positions - fk).max() < 1e-4


def test_bvh_rejects_bad_poses(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"poses must be \(T, 165\)"):
        write_bvh(tmp_path / "bad.bvh", np.zeros((4, 66)))
    assert list(tmp_path.iterdir()) == []


def test_npz_round_trips_through_the_beat2_reader(tmp_path: Path, real: dict[str, np.ndarray]) -> None:
    path = write_npz(tmp_path / "clip.npz", real)
    back = read_motion(path)
    np.testing.assert_array_equal(back["poses"], real["poses"])
    np.testing.assert_allclose(back["trans"], real["trans"])
    with np.load(path) as data:
        np.testing.assert_allclose(data["joints"], forward_kinematics(real["poses"], real["trans"]), atol=1e-5)
        assert float(data["mocap_framerate"]) == 30.0


def test_export_command(tmp_path: Path, real: dict[str, np.ndarray]) -> None:
    source = write_npz(tmp_path / "in.npz", real)
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(source), "--bvh", str(tmp_path / "o.bvh"),
                                  "--npz", str(tmp_path / "o.npz")])
    assert result.exit_code == 0, result.output
    assert "45 frames at 30 fps" in result.output
    assert (tmp_path / "o.bvh").read_text().startswith("HIERARCHY\nROOT pelvis")
    np.testing.assert_array_equal(read_motion(tmp_path / "o.npz")["poses"], real["poses"])
    for args, message, code in (([], "give --bvh, --npz, --glb and/or --fbx", 2),
                                (["--bvh", str(tmp_path / "o.txt")], "give a name ending in .bvh", 1),
                                (["--bvh", str(tmp_path / "nowhere" / "o.bvh")], "does not exist", 1)):
        result = runner.invoke(main, ["export", str(source), *args])
        assert result.exit_code == code and message in result.output, result.output
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    result = runner.invoke(main, ["export", str(broken), "--bvh", str(tmp_path / "b.bvh")])
    assert result.exit_code == 1 and "broken.npz" in result.output and "Traceback" not in result.output


BLENDER_CHECK = '''
import builtins, json, sys
_open = builtins.open
builtins.open = lambda f, mode="r", *a, **k: _open(f, mode.replace("U", ""), *a, **k)  # Debian 3.4 importer
import bpy
bvh, expected = sys.argv[-2], json.load(open(sys.argv[-1]))
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_anim.bvh(filepath=bvh, axis_forward="Y", axis_up="Z", rotate_mode="NATIVE", use_fps_scale=False,
                        update_scene_fps=True)
arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
worst = 0.0
for f in range(len(next(iter(expected.values())))):
    bpy.context.scene.frame_set(f + 1)
    for name, path in expected.items():
        head = arm.matrix_world @ arm.pose.bones[name].head
        worst = max(worst, max(abs(head[i] - path[f][i]) for i in range(3)))
print(f"RESULT {len(arm.pose.bones)} {bpy.context.scene.render.fps} {worst}")
'''


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (apt-get install blender)")
def test_blender_imports_the_bvh(tmp_path: Path, real: dict[str, np.ndarray]) -> None:
    """Blender's own BVH importer: 53 bones at 30 fps whose heads follow the project's FK."""
    path = write_bvh(tmp_path / "clip.bvh", real["poses"][:30], real["trans"][:30])
    fk = forward_kinematics(real["poses"][:30], real["trans"][:30])
    expected = tmp_path / "fk.json"
    expected.write_text(json.dumps({JOINT_NAMES[j]: fk[:, j].tolist() for j in bvh_joints()}))
    script = tmp_path / "check.py"
    script.write_text(BLENDER_CHECK)
    run = subprocess.run(["blender", "-b", "--python", str(script), "--", str(path), str(expected)],
                         capture_output=True, text=True, timeout=600)
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT"))
    bones, fps, worst = line.split()[1:]
    assert (int(bones), int(fps)) == (53, 30) and float(worst) < 1e-4
