"""The default skinned body: mannequin-x's wooden mannequin bound to the 55-joint SMPL-X skeleton, no model files.

mannequin-x ships a skinned mesh (24,256 vertices, 4 influences each) whose rest joints are SMPL-X's neutral
joints (its calibration reproduces them exactly for zero betas). Its 54 joints map onto SMPL-X's 55 by name; the
jaw and eyes, which it lacks, are placed on its head as the built-in skeleton places them, and a small mouth is
added whose lower half is skinned to the jaw, so the jaw rotation opens it. Skinning is plain linear blend
skinning on the project's FK: the bind pose is SMPL-X's zero pose, each inverse bind matrix is a translation
by minus the rest joint, and hand rotations get SMPL-X's mean hand pose added (`flat_hand_mean=False`, as
`create_smplx` builds the model), so the figure's hands look as the SMPL-X mesh's would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from omniges.data.body import EYE_JOINTS, JAW_JOINT, NUM_JOINTS, POSE_DIM
from omniges.data.kinematics import REST_JOINTS, forward_kinematics

HEAD_JOINT = 15
HANDS = slice(75, 165)  # both hands' 30 joints in the (T, 165) axis-angle layout
WOOD, JOINT_WOOD, MOUTH = (0.58, 0.31, 0.13), (0.36, 0.17, 0.07), (0.19, 0.013, 0.021)  # linear RGB (glTF's)


@dataclass(frozen=True)
class SkinnedBody:
    """A mesh skinned to the SMPL-X skeleton: bind-pose vertices, 4 joint influences per vertex, rest joints."""

    vertices: np.ndarray  # (V, 3) float32, bind (zero) pose, metres, y up, facing +z
    normals: np.ndarray  # (V, 3) float32, unit
    colors: np.ndarray  # (V, 3) float32, linear RGB
    faces: np.ndarray  # (F, 3) uint32, counter-clockwise seen from outside
    joints: np.ndarray  # (V, 4) uint16, SMPL-X joint indices
    weights: np.ndarray  # (V, 4) float32, rows sum to 1
    rest_joints: np.ndarray  # (55, 3) float64, the skeleton the mesh is bound to
    hand_mean: np.ndarray  # (90,) float64, added to the hands' axis-angles before skinning

    def skinning_poses(self, poses: np.ndarray) -> np.ndarray:
        """BEAT2 poses (T, 165) -> the local rotations the skeleton applies (hands + SMPL-X's mean hand pose)."""
        poses = np.array(poses, dtype=np.float64)
        poses[:, HANDS] += self.hand_mean
        return poses

    def joint_transforms(self, poses: np.ndarray, trans: np.ndarray | None = None) -> np.ndarray:
        """World transforms (T, 55, 4, 4) of every joint for BEAT2 poses (T, 165) and trans (T, 3)."""
        joints, rotations = forward_kinematics(self.skinning_poses(poses), trans, self.rest_joints,
                                               return_rotations=True)
        out = np.zeros((*joints.shape[:2], 4, 4))
        out[..., :3, :3], out[..., :3, 3], out[..., 3, 3] = rotations, joints, 1.0
        return out

    def skin_matrices(self, poses: np.ndarray, trans: np.ndarray | None = None) -> np.ndarray:
        """Skinning matrices (T, 55, 4, 4): joint world transform times inverse bind (a move by -rest joint)."""
        out = self.joint_transforms(poses, trans)
        out[..., :3, 3] -= np.einsum("tjab,jb->tja", out[..., :3, :3], self.rest_joints)
        return out

    def posed_vertices(self, skin: np.ndarray) -> np.ndarray:
        """Linear blend skinning on the CPU: skinning matrices (55, 4, 4) -> vertices (V, 3)."""
        blended = np.einsum("vk,vkab->vab", self.weights, skin[self.joints.astype(np.int64)])
        return np.einsum("vab,vb->va", blended[:, :3, :3], self.vertices) + blended[:, :3, 3]


def simplified(body: SkinnedBody, keep: float) -> SkinnedBody:
    """The body with about `keep` of its triangles (quadric decimation; the mouth kept whole), for small renders.

    Each new vertex takes the skin weights and colour of one original vertex that collapsed into it.
    """
    import fast_simplification

    mouth = int(np.nonzero((body.joints[:, 0] == JAW_JOINT) | (body.colors == np.float32(MOUTH)).all(axis=1))[0].min())
    first_mouth_face = int(np.nonzero(body.faces.min(axis=1) >= mouth)[0].min())
    faces = body.faces[:first_mouth_face].astype(np.int64)
    points, new_faces, collapses = fast_simplification.simplify(body.vertices[:mouth], faces, 1.0 - keep,
                                                                 return_collapses=True)
    _, _, mapping = fast_simplification.replay_simplification(body.vertices[:mouth], faces, collapses)
    source = np.zeros(len(points), dtype=np.int64)
    source[mapping[::-1]] = np.arange(len(mapping))[::-1]  # the first original vertex of each new one
    vertices = np.concatenate([points.astype(np.float32), body.vertices[mouth:]])
    all_faces = np.concatenate([new_faces.astype(np.uint32), body.faces[first_mouth_face:] - mouth + len(points)])
    keep_rows = np.concatenate([source, np.arange(mouth, len(body.vertices))])
    return SkinnedBody(vertices=vertices, normals=vertex_normals(vertices, all_faces).astype(np.float32),
                       colors=body.colors[keep_rows], faces=all_faces, joints=body.joints[keep_rows],
                       weights=body.weights[keep_rows], rest_joints=body.rest_joints, hand_mean=body.hand_mean)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) of a triangle mesh."""
    tri = vertices[faces.astype(np.int64)]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, corner], face_normals[:, axis], minlength=len(vertices))
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _mouth(centre: np.ndarray, radii: tuple[float, float, float], rings: int = 8, segments: int = 16) -> tuple:
    """A closed ellipsoid (vertices, faces) around `centre`: the mouth, split at its equator between head and jaw."""
    theta = np.linspace(0.0, np.pi, rings + 1)[:, None]
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)[None, :]
    unit = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta) + 0 * phi, np.sin(theta) * np.sin(phi)], axis=-1)
    vertices = (unit.reshape(-1, 3) * radii + centre).astype(np.float32)
    faces = []
    for ring in range(rings):
        for seg in range(segments):
            a, b = ring * segments + seg, ring * segments + (seg + 1) % segments
            faces += [(a, b, a + segments), (b, b + segments, a + segments)]  # counter-clockwise outside
    return vertices, np.array(faces, dtype=np.uint32)


@lru_cache(maxsize=1)
def default_body() -> SkinnedBody:
    """mannequin-x's wooden mannequin on the SMPL-X skeleton, with a jaw-driven mouth (built once per process)."""
    from mannequin import Mannequin

    figure = Mannequin("wooden", flat_hand_mean=True)
    names = list(figure.joint_names)
    # mannequin joints -> SMPL-X: body 0..21 as is, its L_Hand / R_Hand (fixed, at the wrists) -> the wrists,
    # fingers 24.. -> 25.. (SMPL-X has the jaw and eyes at 22..24 instead)
    to_smplx = np.array([j if j < 22 else (20 if j == 22 else 21) if j < 24 else j + 1 for j in range(len(names))])
    bind = np.asarray(figure._identity["skin_bind_positions"], dtype=np.float64)  # noqa: SLF001 - the rest joints
    rest = np.zeros((NUM_JOINTS, 3))
    rest[to_smplx] = bind
    for joint in (JAW_JOINT, *EYE_JOINTS):  # on the head as the built-in skeleton puts them
        rest[joint] = rest[HEAD_JOINT] + REST_JOINTS[joint] - REST_JOINTS[HEAD_JOINT]
    vertices = np.asarray(figure.vertices(figure.rest_pose()), dtype=np.float32)
    faces = np.asarray(figure.faces, dtype=np.uint32)
    joints = to_smplx[np.asarray(figure._skin_joint_indices)].astype(np.uint16)  # noqa: SLF001 - its 4 influences
    weights = np.asarray(figure._skin_weights, dtype=np.float32)  # noqa: SLF001
    weights = weights / weights.sum(axis=1, keepdims=True)
    for a in range(4):  # one influence per joint (its Hand joints map onto the wrists), unused slots on joint 0
        for b in range(a + 1, 4):
            same = joints[:, a] == joints[:, b]
            weights[same, a] += weights[same, b]
            weights[same, b] = 0.0
    joints[weights == 0.0] = 0
    colors = np.tile(np.float32(WOOD), (len(vertices), 1))
    parts = figure._weights  # noqa: SLF001 - the joint balls are parts named joint_*
    for name, start, count in zip(parts.skin_part_names, parts.skin_part_vertex_starts,
                                  parts.skin_part_vertex_counts, strict=True):
        if name.startswith("joint_"):
            colors[start:start + count] = JOINT_WOOD

    # the mouth: a flat dark ellipsoid just under the face's surface, 6.5 cm below the eyes
    mouth_y = rest[list(EYE_JOINTS), 1].mean() - 0.065
    near = (np.abs(vertices[:, 0] - rest[HEAD_JOINT, 0]) < 0.015) & (np.abs(vertices[:, 1] - mouth_y) < 0.01)
    head_weight = (joints == HEAD_JOINT) & (weights > 0.5)
    surface_z = vertices[near & head_weight.any(axis=1), 2].max()
    mouth_v, mouth_f = _mouth(np.array([rest[HEAD_JOINT, 0], mouth_y, surface_z - 0.004]), (0.024, 0.009, 0.008))
    lower = mouth_v[:, 1] < mouth_y - 1e-6
    mouth_joints = np.zeros((len(mouth_v), 4), np.uint16)
    mouth_joints[:, 0] = np.where(lower, JAW_JOINT, HEAD_JOINT)
    mouth_weights = np.zeros((len(mouth_v), 4), np.float32)
    mouth_weights[:, 0] = 1.0

    faces = np.concatenate([faces, mouth_f + len(vertices)])
    vertices = np.concatenate([vertices, mouth_v])
    return SkinnedBody(
        vertices=vertices,
        normals=vertex_normals(vertices, faces).astype(np.float32),
        colors=np.concatenate([colors, np.tile(np.float32(MOUTH), (len(mouth_v), 1))]),
        faces=faces,
        joints=np.concatenate([joints, mouth_joints]),
        weights=np.concatenate([weights, mouth_weights]),
        rest_joints=rest,
        hand_mean=np.asarray(figure._calibration.hand_mean, dtype=np.float64).reshape(-1),  # noqa: SLF001
    )


def check_motion(poses: np.ndarray, trans: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """poses (T, 165) and trans (T, 3) as float64, T >= 1, all finite; a one-line ValueError otherwise."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM or len(poses) == 0:
        raise ValueError(f"poses must be (T, {POSE_DIM}) with T >= 1, got {poses.shape}")
    trans = np.zeros((len(poses), 3)) if trans is None else np.asarray(trans, dtype=np.float64)
    if trans.shape != (len(poses), 3):
        raise ValueError(f"trans must be ({len(poses)}, 3) to match poses, got {trans.shape}")
    for name, values in (("poses", poses), ("trans", trans)):
        if not np.isfinite(values).all():
            rows = np.nonzero(~np.isfinite(values).all(axis=1))[0]
            raise ValueError(f"{name} has NaN or infinite values in {len(rows)} frame(s), first at frame {rows[0]}")
    return poses, trans
