"""Rendering: shaded mannequin and stick figure (no model files), optional SMPL-X mesh, comparison videos."""

from omniges.render.framing import PART_OF_JOINT, Framing, fit_framing
from omniges.render.mannequin import MannequinRenderer
from omniges.render.skeleton import SkeletonRenderer
from omniges.render.video import compose_panels, probe_media, render_comparison, write_video

__all__ = [
    "PART_OF_JOINT",
    "Framing",
    "MannequinRenderer",
    "SkeletonRenderer",
    "compose_panels",
    "fit_framing",
    "probe_media",
    "render_comparison",
    "write_video",
]
