"""Rendering: skinned mannequin or SMPL-X mesh (one GL rasteriser), stick figure, comparison videos."""

from omniges.render.figure import MannequinFigure, SmplxFigure
from omniges.render.framing import PART_OF_JOINT, Framing, fit_framing
from omniges.render.skeleton import SkeletonRenderer
from omniges.render.video import compose_panels, probe_media, render_comparison, write_video

__all__ = [
    "PART_OF_JOINT",
    "Framing",
    "MannequinFigure",
    "SkeletonRenderer",
    "SmplxFigure",
    "compose_panels",
    "fit_framing",
    "probe_media",
    "render_comparison",
    "write_video",
]
