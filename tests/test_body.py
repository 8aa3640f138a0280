"""Body-part representation: exact round trips on the real BEAT2 clip."""

import numpy as np
import pytest

from omniges.data import body


@pytest.fixture(scope="module")
def real(real_clip_paths):
    with np.load(real_clip_paths["npz"]) as data:
        return {k: data[k] for k in ("poses", "trans", "expressions")}


def test_part_dims_match_gesturelsm():
    assert [body.part_dim(p) for p in body.PART_NAMES] == [78, 180, 57, 106]
    assert body.part_dim("face", face_jaw=False) == 100
    with pytest.raises(ValueError, match="unknown body part"):
        body.part_dim("tail")


def test_rot6d_is_first_two_rows():
    angle = np.pi / 2
    rotation = body.axis_angle_to_matrix(np.array([0.0, 0.0, angle]))
    np.testing.assert_allclose(body.matrix_to_rot6d(rotation), [0, -1, 0, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(body.rot6d_to_matrix(body.matrix_to_rot6d(rotation)), rotation, atol=1e-12)


def test_rot6d_round_trip_on_real_clip(real):
    aa = real["poses"].reshape(-1, 55, 3).astype(np.float64)
    back = body.rot6d_to_axis_angle(body.axis_angle_to_rot6d(aa))
    np.testing.assert_allclose(body.axis_angle_to_matrix(back), body.axis_angle_to_matrix(aa), atol=1e-9)
    small = np.linalg.norm(aa, axis=-1) < np.pi - 1e-3
    np.testing.assert_allclose(back[small], aa[small], atol=1e-6)


def test_translation_velocity_round_trip(real):
    velocity = body.trans_to_velocity(real["trans"])
    assert velocity[0, 0] == velocity[1, 0]
    np.testing.assert_allclose(velocity[:, 1], real["trans"][:, 1])
    np.testing.assert_allclose(body.velocity_to_trans(velocity, real["trans"][0]), real["trans"], atol=1e-12)


def test_split_merge_round_trip_on_real_clip(real):
    parts = body.split_parts(real["poses"], real["trans"], real["expressions"])
    assert {k: v.shape[1] for k, v in parts.items()} == {"upper": 78, "hands": 180, "lower_trans": 57, "face": 106}
    poses, trans, expressions = body.merge_parts(parts, trans_init=real["trans"][0])
    covered = [j for joints in body.PART_JOINTS.values() for j in joints] + [body.JAW_JOINT]
    rebuilt = body.axis_angle_to_matrix(poses.reshape(-1, 55, 3)[:, covered])
    original = body.axis_angle_to_matrix(real["poses"].reshape(-1, 55, 3)[:, covered])
    np.testing.assert_allclose(rebuilt, original, atol=1e-5)
    np.testing.assert_allclose(poses.reshape(-1, 55, 3)[:, list(body.EYE_JOINTS)], 0.0)
    np.testing.assert_allclose(trans, real["trans"], atol=1e-5)
    np.testing.assert_allclose(expressions, real["expressions"], atol=1e-6)


def test_joint_angle_error_degrees():
    a = body.axis_angle_to_rot6d(np.zeros((1, 3)))
    b = body.axis_angle_to_rot6d(np.array([[np.radians(10.0), 0, 0]]))
    np.testing.assert_allclose(body.joint_angle_error_deg(a, b), [10.0], atol=1e-6)


def _offset(trans):
    return np.linalg.norm(trans[:, [0, 2]] - trans[0, [0, 2]], axis=1)


def test_root_drift_is_bounded_over_ten_minutes():
    """A 1.5 mm/frame velocity bias walks 27 m in 10 min when integrated; re-centred it settles near bias * horizon
    and never passes max|step| / (1 - leak)."""
    frames, horizon = 10 * 60 * 30, 300
    rng = np.random.default_rng(0)
    steps = np.zeros((frames, 3))
    steps[:, [0, 2]] = 0.0015 * np.array([0.6, 0.8]) + 0.002 * rng.standard_normal((frames, 2))
    trans = np.cumsum(steps, axis=0) + [0.1, 1.3, -0.2]
    trans[:, 1] = 1.3 + 0.01 * rng.standard_normal(frames)
    bounded = body.bound_root_drift(trans, horizon)
    assert _offset(trans)[-1] > 25.0
    leak = np.exp(-1 / horizon)
    bound = np.linalg.norm(np.diff(trans[:, [0, 2]], axis=0), axis=1).max() / (1 - leak)
    assert _offset(bounded).max() <= bound
    assert _offset(bounded)[-3000:].mean() == pytest.approx(0.0015 * horizon, rel=0.15)
    np.testing.assert_array_equal(bounded[:, 1], trans[:, 1])
    np.testing.assert_array_equal(bounded[0], trans[0])
    np.testing.assert_array_equal(body.bound_root_drift(trans, 0), trans)


def test_root_re_centring_keeps_real_short_term_motion(real):
    """On the real clip (63 s) per-frame root steps change by at most 3 mm and stay 0.99 correlated."""
    trans = real["trans"]
    bounded = body.bound_root_drift(trans, 300)
    before, after = np.diff(trans[:, [0, 2]], axis=0), np.diff(bounded[:, [0, 2]], axis=0)
    assert np.abs(after - before).max() < 0.003
    assert np.corrcoef(before.ravel(), after.ravel())[0, 1] > 0.99
    assert _offset(bounded).max() <= _offset(trans).max() + 1e-9
