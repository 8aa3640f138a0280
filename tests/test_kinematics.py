"""Kinematics: the SMPL-X tree, the built-in rest skeleton, FK against known joint positions, joint speeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omniges.data.body import NUM_JOINTS
from omniges.data.kinematics import (
    JOINT_NAMES,
    REST_JOINTS,
    SMPLX_PARENTS,
    forward_kinematics,
    joint_speeds,
    mean_joint_speeds,
    mean_velocity,
    rest_offsets,
)

CLIP = Path(__file__).parent / "fixtures" / "beat2_real" / "smplxflame_30" / "2_scott_0_1_1.npz"
MEAN_VEL = Path(__file__).parent / "fixtures" / "beat2_real" / "mean_std" / "mean_vel_smplxflame_30.npy"


def test_kinematic_tree_and_rest_skeleton() -> None:
    assert len(SMPLX_PARENTS) == NUM_JOINTS and SMPLX_PARENTS[0] == -1
    assert all(SMPLX_PARENTS[j] < j for j in range(1, NUM_JOINTS))
    assert (SMPLX_PARENTS[20], SMPLX_PARENTS[22], SMPLX_PARENTS[25], SMPLX_PARENTS[40]) == (18, 15, 20, 21)
    # left side at +x, right side mirrored, head above pelvis, feet at the bottom
    assert REST_JOINTS[16, 0] > 0.1 and REST_JOINTS[17, 0] < -0.1
    assert REST_JOINTS[15, 1] - REST_JOINTS[10, 1] > 1.4


def test_fk_zero_pose_is_rest_plus_translation() -> None:
    trans = np.array([[0.1, 1.2, -0.3], [0.0, 0.0, 0.0]])
    joints = forward_kinematics(np.zeros((2, 165)), trans)
    np.testing.assert_allclose(joints, REST_JOINTS[None] + trans[:, None], atol=1e-12)


def test_fk_left_shoulder_rotation() -> None:
    """+90 deg about z at the left shoulder (16) swings the T-pose arm from +x to +y (straight up)."""
    poses = np.zeros((1, 165))
    poses[0, 16 * 3 + 2] = np.pi / 2
    joints = forward_kinematics(poses)[0]
    shoulder = REST_JOINTS[16]
    for joint in (18, 20):
        offset = REST_JOINTS[joint] - shoulder
        expected = shoulder + np.array([-offset[1], offset[0], offset[2]])
        np.testing.assert_allclose(joints[joint], expected, atol=1e-9)
    assert joints[20, 1] > shoulder[1] + 0.45  # the wrist is now high above the shoulder
    np.testing.assert_allclose(joints[:16], REST_JOINTS[:16], atol=1e-12)  # nothing upstream moves


def test_fk_global_orient_rotates_about_the_pelvis() -> None:
    poses = np.zeros((1, 165))
    poses[0, 1] = np.pi  # 180 deg about y: the body turns to face -z
    joints = forward_kinematics(poses)[0]
    pelvis = REST_JOINTS[0]
    np.testing.assert_allclose(joints[0], pelvis, atol=1e-12)
    expected = pelvis + (REST_JOINTS - pelvis) * np.array([-1.0, 1.0, -1.0])
    np.testing.assert_allclose(joints, expected, atol=1e-9)


def test_fk_real_clip_is_plausible() -> None:
    data = np.load(CLIP)
    joints = forward_kinematics(data["poses"], data["trans"])
    assert joints.shape == (len(data["poses"]), 55, 3) and np.isfinite(joints).all()
    feet = joints[:, [7, 8, 10, 11], 1].min(axis=1)
    head = joints[:, 15, 1]
    assert np.all(np.abs(feet) < 0.15)  # standing on the floor
    assert np.all((head > 1.3) & (head < 1.8))  # head joint of a standing adult
    np.testing.assert_allclose(
        np.linalg.norm(joints[:, 18] - joints[:, 16], axis=1),
        np.linalg.norm(REST_JOINTS[18] - REST_JOINTS[16]),
        rtol=1e-9,
    )


def test_joint_names_follow_the_tree() -> None:
    assert len(JOINT_NAMES) == NUM_JOINTS == len(set(JOINT_NAMES))
    assert (JOINT_NAMES[0], JOINT_NAMES[20], JOINT_NAMES[25], JOINT_NAMES[54]) == (
        "pelvis", "left_wrist", "left_index1", "right_thumb3")
    for joint in range(25, NUM_JOINTS):  # every finger joint hangs off its own hand's wrist chain
        side = "left" if joint < 40 else "right"
        assert JOINT_NAMES[joint].startswith(side)


def test_rest_offsets_rebuild_the_rest_skeleton() -> None:
    offsets = rest_offsets()
    rebuilt = np.zeros_like(offsets)
    for joint in range(NUM_JOINTS):
        parent = SMPLX_PARENTS[joint]
        rebuilt[joint] = offsets[joint] + (rebuilt[parent] if parent >= 0 else 0.0)
    np.testing.assert_allclose(rebuilt, REST_JOINTS, atol=1e-12)


def test_joint_speeds_of_a_constant_velocity() -> None:
    trans = np.outer(np.arange(10), [0.01, 0.0, 0.02])  # 0.01 m and 0.02 m per frame at 30 fps
    speeds = joint_speeds(forward_kinematics(np.zeros((10, 165)), trans), fps=30)
    np.testing.assert_allclose(speeds, np.hypot(0.3, 0.6), rtol=1e-12)
    np.testing.assert_allclose(mean_joint_speeds(np.zeros((10, 165)), trans), np.hypot(0.3, 0.6), rtol=1e-12)


def test_mean_velocity_of_the_real_clip_is_near_beat2() -> None:
    """Frame-weighted over clips; the real (active) clip moves about twice BEAT2's corpus mean."""
    with np.load(CLIP) as data:
        poses, trans = data["poses"], data["trans"]
    half = len(poses) // 2
    whole = mean_velocity([(poses, trans)])
    np.testing.assert_allclose(mean_velocity([(poses[:half], trans[:half]), (poses[half:], trans[half:])]),
                               whole, rtol=0.05)
    ratio = whole / np.load(MEAN_VEL)
    assert 1.5 < np.median(ratio) < 2.5
