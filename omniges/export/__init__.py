"""Motion export for other tools: BVH of the SMPL-X skeleton, SMPL-X npz, glTF (.glb) and FBX of the skinned body."""

from omniges.export.bvh import bvh_joints, write_bvh
from omniges.export.fbx import BlenderMissingError, blender_path, write_fbx
from omniges.export.gltf import write_glb
from omniges.export.npz import write_npz

__all__ = ["BlenderMissingError", "blender_path", "bvh_joints", "write_bvh", "write_fbx", "write_glb", "write_npz"]
