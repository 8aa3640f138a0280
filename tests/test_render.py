"""Rendering: part colours, skeleton frames, mp4 + audio, SMPL-X mesh via a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omniges.data.body import NUM_JOINTS
from omniges.data.kinematics import REST_JOINTS, SMPLX_PARENTS, forward_kinematics, rest_joints_from_model
from omniges.render.figure import MannequinFigure, SmplxFigure, render_sequence
from omniges.render.framing import PART_COLORS, PART_OF_JOINT
from omniges.render.skeleton import SkeletonRenderer
from omniges.render.video import compose_panels, probe_media, render_comparison, write_video

CLIP = Path(__file__).parent / "fixtures" / "beat2_real" / "smplxflame_30" / "2_scott_0_1_1.npz"
SMPLX_VERTEX_COUNT = 10475  # smplx reads fixed vertex ids (up to 9929) for face/feet/finger keypoints


def test_joint_parts() -> None:
    assert PART_OF_JOINT[18] == "upper" and PART_OF_JOINT[30] == "hands" and PART_OF_JOINT[4] == "lower"
    assert PART_OF_JOINT[22] == "face"


def test_skeleton_renderer_frames() -> None:
    renderer = SkeletonRenderer(128, 96)
    poses = np.zeros((2, 165))
    poses[1, 16 * 3 + 2] = np.pi / 2
    jaw = np.array([[0.0, 0, 0], [0.4, 0, 0]])
    frames = renderer.render_sequence(forward_kinematics(poses), jaw, np.zeros((2, 100)), title="t")
    assert frames.shape == (2, 96, 128, 3) and frames.dtype == np.uint8
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).sum() > 1000
    for part, color in PART_COLORS.items():  # every part's colour appears (approximately) in the image
        distance = np.abs(frames[0].astype(int) - np.array(color)).sum(axis=-1)
        assert distance.min() < 40, part


def test_skeleton_renderer_jaw_opens_mouth() -> None:
    renderer = SkeletonRenderer(256, 256)
    joints = forward_kinematics(np.zeros((2, 165)))
    frames = renderer.render_sequence(joints, np.array([[0.0, 0, 0], [0.5, 0, 0]]))
    mouth_red = [(np.abs(f.astype(int) - [150, 40, 50]).sum(-1) < 30).sum() for f in frames]
    assert mouth_red[1] > 2 * mouth_red[0]


@pytest.mark.parametrize("seconds_audio", [1.7, 2.6])
def test_write_video_matches_audio(tmp_path: Path, seconds_audio: float) -> None:
    fps, sr, length = 30, 16000, 60
    frames = np.zeros((length, 64, 80, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.linspace(0, 255, length, dtype=np.uint8)[:, None, None]
    audio = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds_audio * sr)) / sr).astype(np.float32)
    path = write_video(tmp_path / "out.mp4", frames, fps, audio, sr)
    info = probe_media(path)
    assert info["has_audio"] and (info["width"], info["height"]) == (80, 64) and info["fps"] == 30
    assert info["duration_video"] == pytest.approx(length / fps, abs=1e-6)
    assert info["duration_audio"] == pytest.approx(info["duration_video"], abs=1 / fps)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_write_video_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "bad.mp4"
    with pytest.raises(ValueError):
        write_video(target, np.zeros((5, 32, 32), dtype=np.uint8), 30)

    def frames():  # fails after ffmpeg has started writing
        yield np.zeros((32, 32, 3), dtype=np.uint8)
        yield np.zeros((16, 32, 3), dtype=np.uint8)

    with pytest.raises(ValueError):
        write_video(target, frames(), 30, np.zeros(16000, dtype=np.float32))
    assert list(tmp_path.iterdir()) == []
    write_video(target, np.zeros((3, 31, 33, 3), dtype=np.uint8), 30)  # odd sizes are padded
    assert probe_media(target)["has_audio"] is False and probe_media(target)["width"] == 34


def test_compose_and_render_comparison(tmp_path: Path) -> None:
    left = np.zeros((4, 40, 50, 3), dtype=np.uint8)
    right = np.full((5, 40, 60, 3), 200, dtype=np.uint8)
    words = [("hello", 0.0, 0.05), ("world", 0.05, 0.2)]
    composed = compose_panels([("a", left), ("b", right)], words, fps=30)
    assert composed.shape[0] == 4 and composed.shape[2] == 110 and composed.shape[1] > 40
    assert not np.array_equal(composed[0], composed[2])  # the highlighted word moves on

    data = np.load(CLIP)
    clip = {"poses": data["poses"][:45], "trans": data["trans"][:45], "expressions": data["expressions"][:45]}
    shifted = {key: value[::-1].copy() for key, value in clip.items()}
    audio = np.zeros(24000, dtype=np.float32)
    path = render_comparison(
        tmp_path / "cmp.mp4",
        {"ground truth": clip, "generated": shifted},
        audio,
        16000,
        words,
        size=128,
        progress=False,
    )
    info = probe_media(path)
    assert info["width"] == 256 and info["duration_video"] == pytest.approx(1.5)
    assert info["duration_audio"] == pytest.approx(1.5, abs=1 / 30)


def _changed(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Pixels where something is drawn over the empty scene."""
    return np.abs(frame.astype(int) - background.astype(int)).sum(-1) > 30


def test_mannequin_figure_is_a_skinned_body_on_a_floor() -> None:
    figure = MannequinFigure(192, 192)
    poses = np.zeros((2, 165))
    poses[1, 16 * 3 + 2] = np.pi / 2  # left arm straight up
    clip = figure.prepare(poses)
    framing = figure.framing([clip])
    frames = render_sequence(figure, poses, framing=framing)
    assert frames.shape == (2, 192, 192, 3) and frames.dtype == np.uint8
    background = render_sequence(figure, poses[:1], np.full((1, 3), 100.0), framing=framing)[0]  # out of view
    body = _changed(frames[0], background)
    assert 0.05 < body.mean() < 0.5
    brightness = frames[0].astype(float).sum(-1)[body]
    assert brightness.max() - brightness.min() > 150  # lit and shaded sides, not a flat fill
    for t in (0, 1):  # the hand is drawn where the skeleton puts it, in both poses
        u, v = framing.project(clip.points[t, 20]).astype(int)
        assert _changed(frames[t][v - 1 : v + 2, u - 1 : u + 2], background[v - 1 : v + 2, u - 1 : u + 2]).all()
    u, v = framing.project(clip.points[0, 20]).astype(int)
    assert not _changed(frames[1][v - 1 : v + 2, u - 1 : u + 2], background[v - 1 : v + 2, u - 1 : u + 2]).any()
    feet_row = int(framing.project(clip.points[0, 10])[1]) + 3
    under, aside = background[feet_row, 96].astype(int), frames[0][feet_row, 96].astype(int)
    assert (aside < under).all()  # contact shadow (or the feet) under the body


def test_figure_renders_the_same_in_another_thread() -> None:
    """Each thread gets its own GL context (the web app renders in a worker thread after the main one has)."""
    from concurrent.futures import ThreadPoolExecutor

    poses = np.zeros((1, 165))
    here = render_sequence(MannequinFigure(64, 64), poses)
    with ThreadPoolExecutor(1) as pool:
        there = pool.submit(lambda: render_sequence(MannequinFigure(64, 64), poses)).result()
    np.testing.assert_array_equal(here, there)


def test_render_body_is_the_mannequin_decimated_with_its_mouth() -> None:
    from omniges.data.skinned_body import default_body
    from omniges.render.figure import RENDER_KEEP, render_body

    full, small = default_body(), render_body()
    assert abs(len(small.faces) / len(full.faces) - RENDER_KEEP) < 0.05
    assert np.allclose(small.weights.sum(axis=1), 1.0) and (small.joints == 22).sum() == (full.joints == 22).sum()
    assert np.abs(small.vertices.min(axis=0) - full.vertices.min(axis=0)).max() < 0.01  # same extent
    assert np.abs(small.vertices.max(axis=0) - full.vertices.max(axis=0)).max() < 0.01


def test_mannequin_jaw_opens_the_mouth_and_nearer_parts_hide_farther() -> None:
    figure = MannequinFigure(512, 512)
    poses = np.zeros((2, 165))
    poses[1, 66] = 0.3
    clip = figure.prepare(poses)
    framing = figure.framing([clip])
    closed, opened = render_sequence(figure, poses, framing=framing)
    assert (np.abs(closed.astype(int) - opened.astype(int)).sum(-1) > 30).sum() > 3  # the mouth opens
    crossed = np.zeros((1, 165))
    crossed[0, 16 * 3 + 1] = -np.pi / 2  # left upper arm points forward
    crossed[0, 18 * 3 + 1] = -np.pi / 2  # forearm folds across the front of the chest
    arm = figure.prepare(crossed)
    u, v = framing.project((arm.points[0, 18] + arm.points[0, 20]) / 2).astype(int)
    rest_patch = closed[v - 1 : v + 2, u - 1 : u + 2].astype(int)
    folded = render_sequence(figure, crossed, framing=framing)[0][v - 1 : v + 2, u - 1 : u + 2].astype(int)
    assert np.abs(rest_patch - folded).sum(-1).min() > 10  # the nearer forearm hides the chest


def test_render_comparison_styles(tmp_path: Path) -> None:
    clip = {"poses": np.zeros((6, 165)), "trans": np.zeros((6, 3)), "expressions": np.zeros((6, 100))}
    with pytest.raises(ValueError, match="unknown render style 'cartoon'"):
        render_comparison(tmp_path / "x.mp4", {"a": clip}, size=64, style="cartoon", progress=False)
    for style in ("mannequin", "skeleton"):
        path = render_comparison(tmp_path / f"{style}.mp4", {"a": clip}, size=64, style=style, progress=False)
        assert probe_media(path)["width"] == 64


def make_tiny_smplx(path: Path) -> Path:
    """A SMPL-X-format npz: one box per bone over REST_JOINTS, padded to SMPL-X's vertex count."""
    rest = REST_JOINTS
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    box_faces = np.array([f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))])
    vertices, faces, owner = [], [], []
    for joint in range(1, NUM_JOINTS):
        parent = SMPLX_PARENTS[joint]
        half = 0.006 if joint >= 25 else 0.03
        centre = (rest[joint] + rest[parent]) / 2
        extent = np.abs(rest[joint] - rest[parent]) / 2 + half
        faces.append(box_faces + len(vertices))
        vertices.extend(centre + corners * extent)
        owner.extend([parent] * 8)
    markers = len(vertices)  # one vertex exactly at each rest joint, regressed as that joint
    vertices.extend(rest)
    owner.extend(range(NUM_JOINTS))
    pad = SMPLX_VERTEX_COUNT - len(vertices)
    vertices.extend([rest[0]] * pad)
    owner.extend([0] * pad)
    count = SMPLX_VERTEX_COUNT
    weights = np.zeros((count, NUM_JOINTS), dtype=np.float32)
    weights[np.arange(count), owner] = 1.0
    regressor = np.zeros((NUM_JOINTS, count), dtype=np.float32)
    regressor[np.arange(NUM_JOINTS), markers + np.arange(NUM_JOINTS)] = 1.0
    shapedirs = np.zeros((count, 3, 400), dtype=np.float32)
    head_box = np.nonzero(np.array(owner[:markers]) == 15)[0]
    shapedirs[head_box, 1, 300] = 0.1  # expression 0 lifts the head box: visible in a front view
    np.savez_compressed(
        path,
        v_template=np.array(vertices, dtype=np.float32),
        f=np.concatenate(faces).astype(np.int32),
        shapedirs=shapedirs,
        posedirs=np.zeros((count, 3, 486), dtype=np.float32),
        J_regressor=regressor,
        weights=weights,
        kintree_table=np.array([SMPLX_PARENTS, range(NUM_JOINTS)], dtype=np.int64),
        hands_componentsl=np.eye(45, dtype=np.float32),
        hands_componentsr=np.eye(45, dtype=np.float32),
        hands_meanl=np.zeros(45, dtype=np.float32),
        hands_meanr=np.zeros(45, dtype=np.float32),
        lmk_faces_idx=np.zeros(51, dtype=np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3, dtype=np.float32),
        dynamic_lmk_faces_idx=np.zeros((79, 17), dtype=np.int64),
        dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3, dtype=np.float32),
    )
    return path


@pytest.fixture(scope="module")
def tiny_smplx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_smplx(tmp_path_factory.mktemp("smplx") / "SMPLX_NEUTRAL_2020.npz")


def test_smplx_mesh_agrees_with_fk(tiny_smplx: Path) -> None:
    from omniges.render.smplx_mesh import SmplxMesh

    np.testing.assert_allclose(rest_joints_from_model(tiny_smplx), REST_JOINTS, atol=1e-6)
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.3, (3, 165))
    trans = rng.normal(0, 0.5, (3, 3))
    markers = 8 * (NUM_JOINTS - 1)  # box vertices come first, then one marker per joint
    vertices = SmplxMesh(tiny_smplx).vertices(poses, trans)
    assert vertices.shape == (3, SMPLX_VERTEX_COUNT, 3)
    np.testing.assert_allclose(vertices[:, markers : markers + NUM_JOINTS], forward_kinematics(poses, trans), atol=1e-4)


def test_smplx_mesh_render(tiny_smplx: Path) -> None:
    figure = SmplxFigure(tiny_smplx, 96, 96)
    poses = np.zeros((3, 165))
    poses[1, 16 * 3 + 2] = np.pi / 2
    expressions = np.zeros((3, 100))
    expressions[2, 0] = 1.0
    clip = figure.prepare(poses, None, expressions)
    framing = figure.framing([clip])
    frames = render_sequence(figure, poses, None, expressions, framing=framing)
    assert frames.shape == (3, 96, 96, 3) and frames.dtype == np.uint8
    empty = render_sequence(figure, poses[:1], np.full((1, 3), 100.0), framing=framing)[0]
    body = _changed(frames[0], empty).mean()
    assert 0.05 < body < 0.6  # the figure covers part of the frame, not none or all of it
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[0], frames[2])
