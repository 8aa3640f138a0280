"""Binary glTF 2.0 (.glb) of a motion: the default skinned body, its SMPL-X skeleton and the animation.

One file that engines (Unity, Unreal, Godot), Blender and three.js open directly: a skinned mesh (mannequin-x's
wooden figure with a jaw-driven mouth, `omniges.data.skinned_body`), 55 joint nodes named as SMPL-X names them
(metres, y up, facing +z), and one animation at the motion's frame rate: every joint's local rotation (SMPL-X's
axis-angle as a quaternion, hands with SMPL-X's mean hand pose added, as the mesh is bound with flat hands) and
the pelvis translation (its rest offset plus `trans`). Expressions are not in the file (FLAME coefficients have no
glTF meaning); the npz keeps them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pygltflib as gl
from scipy.spatial.transform import Rotation

from omniges.data.kinematics import JOINT_NAMES, SMPLX_PARENTS
from omniges.data.skinned_body import SkinnedBody, check_motion, default_body

ANIMATION_NAME = "omniges"
MESH_NAME = "body"


def _quaternions(poses: np.ndarray) -> np.ndarray:
    """(T, 165) axis-angle -> (T, 55, 4) xyzw quaternions, each joint's track sign-continuous for interpolation."""
    quats = Rotation.from_rotvec(poses.reshape(-1, 3)).as_quat().reshape(len(poses), -1, 4)
    flips = np.cumsum(np.einsum("tjc,tjc->tj", quats[1:], quats[:-1]) < 0, axis=0) % 2
    quats[1:] *= np.where(flips == 1, -1.0, 1.0)[..., None]
    return quats


def animation_channels(poses: np.ndarray, trans: np.ndarray, body: SkinnedBody) -> tuple[np.ndarray, np.ndarray]:
    """What the skeleton is animated with: (T, 55, 4) xyzw local rotations (hands with SMPL-X's mean hand pose
    added, as the mesh is bound) and the (T, 3) pelvis position (its rest offset plus `trans`). The .glb's channels;
    the live page poses the same bones with them."""
    return _quaternions(body.skinning_poses(poses)), body.rest_joints[0] + np.asarray(trans)


class _Buffer:
    """One binary buffer growing by 4-byte-aligned views, with the accessors that read them."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf, self.chunks, self.size = gltf, [], 0

    def add(self, array: np.ndarray, kind: str, component: int, *, target: int | None = None,
            bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.size, byteLength=len(data),
                                                   target=target))
        self.chunks.append(data + b"\0" * (-len(data) % 4))
        self.size += len(self.chunks[-1])
        flat = array.reshape(len(array), -1)
        accessor = gl.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component,
                               count=len(array), type=kind)
        if bounds:
            accessor.min, accessor.max = flat.min(axis=0).tolist(), flat.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.chunks)


def build_gltf(poses: np.ndarray, trans: np.ndarray | None = None, *, fps: float = 30,
               body: SkinnedBody | None = None) -> gl.GLTF2:
    """The glTF document (with its binary blob set) for poses (T, 165) axis-angle and trans (T, 3)."""
    poses, trans = check_motion(poses, trans)
    body = body or default_body()
    rest = body.rest_joints
    gltf = gl.GLTF2(asset=gl.Asset(generator="omniges", version="2.0"), scene=0)
    buffer = _Buffer(gltf)

    mesh_attributes = gl.Attributes(
        POSITION=buffer.add(body.vertices.astype(np.float32), gl.VEC3, gl.FLOAT, target=gl.ARRAY_BUFFER,
                            bounds=True),
        NORMAL=buffer.add(body.normals.astype(np.float32), gl.VEC3, gl.FLOAT, target=gl.ARRAY_BUFFER),
        COLOR_0=buffer.add(body.colors.astype(np.float32), gl.VEC3, gl.FLOAT, target=gl.ARRAY_BUFFER),
        JOINTS_0=buffer.add(body.joints.astype(np.uint16), gl.VEC4, gl.UNSIGNED_SHORT, target=gl.ARRAY_BUFFER),
        WEIGHTS_0=buffer.add(body.weights.astype(np.float32), gl.VEC4, gl.FLOAT, target=gl.ARRAY_BUFFER),
    )
    indices = buffer.add(body.faces.astype(np.uint32).reshape(-1), gl.SCALAR, gl.UNSIGNED_INT,
                         target=gl.ELEMENT_ARRAY_BUFFER)
    gltf.materials.append(gl.Material(name="wood", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.75)))
    gltf.meshes.append(gl.Mesh(name=MESH_NAME, primitives=[gl.Primitive(attributes=mesh_attributes,
                                                                        indices=indices, material=0)]))

    # nodes: 0 = the skinned mesh, 1 + j = SMPL-X joint j (translation = rest offset from its parent)
    offsets = rest.copy()
    offsets[1:] -= rest[list(SMPLX_PARENTS[1:])]
    gltf.nodes.append(gl.Node(name=MESH_NAME, mesh=0, skin=0))
    for joint, name in enumerate(JOINT_NAMES):
        children = [1 + c for c, parent in enumerate(SMPLX_PARENTS) if parent == joint]
        gltf.nodes.append(gl.Node(name=name, translation=offsets[joint].tolist(), children=children or None))
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (len(rest), 1, 1))
    inverse_bind[:, 3, :3] = -rest  # column-major: the translation is the last column, stored last
    gltf.skins.append(gl.Skin(name="smplx", joints=list(range(1, 1 + len(rest))), skeleton=1,
                              inverseBindMatrices=buffer.add(inverse_bind.reshape(len(rest), 16), gl.MAT4,
                                                             gl.FLOAT)))
    gltf.scenes.append(gl.Scene(name="omniges", nodes=[0, 1]))

    times = buffer.add((np.arange(len(poses)) / fps).astype(np.float32), gl.SCALAR, gl.FLOAT, bounds=True)
    quats, root = animation_channels(poses, trans, body)
    quats, root = quats.astype(np.float32), root.astype(np.float32)
    samplers, channels = [], []
    for joint in range(len(rest)):
        samplers.append(gl.AnimationSampler(input=times, output=buffer.add(quats[:, joint], gl.VEC4, gl.FLOAT),
                                            interpolation=gl.ANIM_LINEAR))
        channels.append(gl.AnimationChannel(sampler=joint, target=gl.AnimationChannelTarget(node=1 + joint,
                                                                                            path="rotation")))
    samplers.append(gl.AnimationSampler(input=times, output=buffer.add(root, gl.VEC3, gl.FLOAT),
                                        interpolation=gl.ANIM_LINEAR))
    channels.append(gl.AnimationChannel(sampler=len(rest), target=gl.AnimationChannelTarget(node=1,
                                                                                           path="translation")))
    gltf.animations.append(gl.Animation(name=ANIMATION_NAME, samplers=samplers, channels=channels))
    blob = buffer.blob()
    gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
    gltf.set_binary_blob(blob)
    return gltf


def write_glb(path: str | Path, poses: np.ndarray, trans: np.ndarray | None = None, *, fps: float = 30,
              body: SkinnedBody | None = None) -> Path:
    """Write the motion as one binary glTF (.glb), atomically (temp file beside it, then rename)."""
    path = Path(path)
    data = b"".join(build_gltf(poses, trans, fps=fps, body=body).save_to_bytes())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
