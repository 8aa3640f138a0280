"""Rendering: SMPL-X skeleton FK and drawing (no model files), optional SMPL-X mesh, comparison videos."""

from omniges.render.skeleton import (
    PART_OF_JOINT,
    REST_JOINTS,
    SMPLX_PARENTS,
    SkeletonRenderer,
    forward_kinematics,
    rest_joints_from_model,
)
from omniges.render.video import compose_panels, probe_media, render_comparison, write_video

__all__ = [
    "PART_OF_JOINT",
    "REST_JOINTS",
    "SMPLX_PARENTS",
    "SkeletonRenderer",
    "compose_panels",
    "forward_kinematics",
    "probe_media",
    "render_comparison",
    "rest_joints_from_model",
    "write_video",
]
