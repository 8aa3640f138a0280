"""FBX for Unity / Unreal through Blender: the .glb imported and exported again by `blender -b` (headless).

Blender is the one FBX writer that is free and offline; where it is not installed, `write_fbx` fails with one line
naming the missing program (`make blender` installs Debian's package when root and apt are there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from omniges.export.gltf import write_glb

# Blender side: import the glb (skinned mesh, armature, action), export FBX with the baked animation.
_SCRIPT = """
import sys, bpy
import numpy
if "bool" not in vars(numpy):  # Debian's Blender 3.4 glTF add-on still says np.bool (gone since numpy 1.24)
    numpy.bool = bool
source, target, fps = sys.argv[sys.argv.index("--") + 1:]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.fps = int(fps)
bpy.ops.import_scene.gltf(filepath=source)
armature = next(o for o in scene.objects if o.type == "ARMATURE")
start, end = armature.animation_data.action.frame_range
scene.frame_start, scene.frame_end = int(start), int(end)  # the baked take spans the clip
bpy.ops.export_scene.fbx(filepath=target, path_mode="COPY", add_leaf_bones=False, bake_anim=True,
                         bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                         bake_anim_simplify_factor=0.0)
"""


class BlenderMissingError(RuntimeError):
    """Blender is not installed (or not on PATH)."""


def blender_path() -> str | None:
    """The `blender` program on PATH ($OMNIGES_BLENDER overrides), or None."""
    return os.environ.get("OMNIGES_BLENDER") or shutil.which("blender")


def write_fbx(path: str | Path, poses: np.ndarray, trans: np.ndarray | None = None, *, fps: float = 30,
              timeout_s: float = 600) -> Path:
    """Write the motion as FBX (skinned body, SMPL-X skeleton, animation) via Blender, atomically."""
    blender = blender_path()
    if blender is None:
        raise BlenderMissingError("--fbx needs the program `blender` (not found on PATH; `make blender` installs it)")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as folder:
        glb = write_glb(Path(folder) / "motion.glb", poses, trans, fps=fps)
        fbx = Path(folder) / "motion.fbx"
        result = subprocess.run([blender, "-b", "--factory-startup", "--python-expr", _SCRIPT, "--", str(glb),
                                 str(fbx), str(round(fps))], capture_output=True, text=True, timeout=timeout_s)
        if result.returncode or not fbx.is_file():
            last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
            raise RuntimeError(f"blender could not write the FBX (exit {result.returncode}): {last}")
        os.chmod(fbx, 0o644)
        os.replace(fbx, path)
    return path
