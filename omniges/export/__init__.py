"""Motion export for other tools: BVH of the SMPL-X skeleton (Blender, retargeting) and SMPL-X npz."""

from omniges.export.bvh import bvh_joints, write_bvh
from omniges.export.npz import write_npz

__all__ = ["bvh_joints", "write_bvh", "write_npz"]
