"""One real rasteriser for every body: OpenGL 3.3 through moderngl, headless on EGL (Mesa's llvmpipe on a CPU).

Two draws per frame into a 4x multisampled framebuffer: a backdrop (wall, floor, a soft contact shadow under the
feet, all in one fragment shader) and the body. A skinned body (`SkinnedBody`: the default mannequin) is posed on
the GPU by linear blend skinning from 55 joint matrices a frame, with smooth normals; a mesh whose vertices are
given each frame (the SMPL-X model's) is drawn with flat normals from screen-space derivatives. The camera is the
orthographic front view of `framing.Framing`, so every style frames a clip the same way.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from omniges.data.skinned_body import SkinnedBody
from omniges.render.framing import Framing

_BODY_VS = """
#version 330
uniform mat4 bones[55];
uniform bool skinned;
uniform vec4 camera;  // x centre, y centre, 2 scale / width, 2 scale / height
uniform vec2 depth;   // z centre, 1 / half depth range
in vec3 in_position;
in vec3 in_normal;
in vec3 in_color;
in vec4 in_joints;
in vec4 in_weights;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_color;
void main() {
    mat4 skin = mat4(1.0);
    if (skinned) {
        skin = in_weights.x * bones[int(in_joints.x)] + in_weights.y * bones[int(in_joints.y)]
             + in_weights.z * bones[int(in_joints.z)] + in_weights.w * bones[int(in_joints.w)];
    }
    vec4 world = skin * vec4(in_position, 1.0);
    v_world = world.xyz;
    v_normal = mat3(skin) * in_normal;
    v_color = in_color;
    gl_Position = vec4((world.x - camera.x) * camera.z, (world.y - camera.y) * camera.w,
                       -(world.z - depth.x) * depth.y, 1.0);
}
"""

_BODY_FS = """
#version 330
uniform bool face_normals;
uniform float pelvis_z;
in vec3 v_world;
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
const vec3 key = normalize(vec3(-0.45, 0.6, 0.66));   // upper left, in front
const vec3 fill = normalize(vec3(0.6, 0.1, 0.5));
void main() {
    vec3 n = face_normals ? normalize(cross(dFdx(v_world), dFdy(v_world))) : normalize(v_normal);
    if (!face_normals && !gl_FrontFacing) n = -n;
    float diffuse = max(dot(n, key), 0.0);
    float shine = pow(max(dot(n, normalize(key + vec3(0.0, 0.0, 1.0))), 0.0), 24.0);
    float behind = clamp((pelvis_z - v_world.z) / 0.35, -1.0, 1.0);
    float light = (0.30 + 0.62 * diffuse + 0.18 * max(dot(n, fill), 0.0)) * (1.0 - 0.12 * behind);
    vec3 linear = v_color * light + 0.10 * shine;
    f_color = vec4(pow(clamp(linear, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
}
"""

_BACKDROP_VS = """
#version 330
in vec2 in_corner;
void main() { gl_Position = vec4(in_corner, 0.999, 1.0); }
"""

_BACKDROP_FS = """
#version 330
uniform vec2 size;      // width, height (pixels)
uniform float horizon;  // pixel row (from the top) where the wall meets the floor
uniform vec3 wall;
uniform vec4 shadow;    // centre u, v (pixels from the top left), half width, half height
uniform float shadow_strength;
out vec4 f_color;
void main() {
    float row = size.y - gl_FragCoord.y;
    vec3 color = wall * (1.0 - 0.06 * row / size.y);
    if (row >= horizon) {
        float far = clamp((row - horizon) / max(size.y - horizon, 1.0), 0.0, 1.0);
        color = vec3(204.0, 199.0, 189.0) / 255.0 * (0.92 + 0.1 * far);
    }
    vec2 offset = (vec2(gl_FragCoord.x, row) - shadow.xy) / shadow.zw;
    color *= 1.0 - shadow_strength * exp(-1.5 * dot(offset, offset));
    f_color = vec4(color, 1.0);
}
"""


class RasterError(RuntimeError):
    """No headless OpenGL here (Mesa's EGL missing)."""


_THREAD = threading.local()


def gl_context():
    """This thread's headless OpenGL 3.3 context (EGL; Mesa's llvmpipe when there is no GPU).

    One per thread: an EGL context is current in one thread only (the web app renders in a worker thread).
    """
    if getattr(_THREAD, "context", None) is None:
        _THREAD.context = _create_context()
    return _THREAD.context


def _create_context():
    import moderngl

    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    try:
        ctx = moderngl.create_standalone_context(backend="egl")
    except Exception as error:  # glcontext raises plain Exceptions for a missing libEGL or driver
        raise RasterError(f"no headless OpenGL (EGL): {error}; install libegl1 libegl-mesa0 libgl1-mesa-dri "
                          "(`make gl`)") from None
    ctx.gc_mode = "context_gc"  # dead GL objects are freed by ctx.gc(), in the context's own thread
    return ctx


class GLRenderer:
    """Offscreen renderer of bodies at width x height: skinned on the GPU, or given vertices per frame."""

    def __init__(self, width: int = 512, height: int = 512, *, samples: int = 0,
                 background: tuple[int, int, int] = (236, 236, 232)) -> None:
        self.width, self.height, self.background = width, height, background
        ctx = self.ctx = gl_context()
        ctx.gc()  # free earlier renderers' buffers
        samples = min(samples, ctx.max_samples)  # 0 by default: 4x MSAA triples llvmpipe's time per frame
        self._target = ctx.framebuffer(color_attachments=[ctx.renderbuffer((width, height), 4, samples=samples)],
                                     depth_attachment=ctx.depth_renderbuffer((width, height), samples=samples))
        self._resolved = ctx.simple_framebuffer((width, height), components=4)
        self._body = ctx.program(vertex_shader=_BODY_VS, fragment_shader=_BODY_FS)
        self._backdrop = ctx.program(vertex_shader=_BACKDROP_VS, fragment_shader=_BACKDROP_FS)
        corners = np.array([-1, -1, 3, -1, -1, 3], dtype="f4")  # one triangle over the whole screen
        self._screen = ctx.vertex_array(self._backdrop, [(ctx.buffer(corners.tobytes()), "2f", "in_corner")])
        self._meshes: dict[int, tuple] = {}

    def _vertex_array(self, key: int, vertices: np.ndarray, normals: np.ndarray, colors: np.ndarray,
                      faces: np.ndarray, joints: np.ndarray | None = None, weights: np.ndarray | None = None):
        """The mesh's vertex array (cached by `key`) and its position buffer."""
        if key not in self._meshes:
            ctx, count = self.ctx, len(vertices)
            joints = np.zeros((count, 4)) if joints is None else joints
            weights = np.tile([1.0, 0.0, 0.0, 0.0], (count, 1)) if weights is None else weights
            position = ctx.buffer(np.asarray(vertices, "f4").tobytes(), dynamic=True)
            attributes = np.concatenate([normals, colors, joints, weights], axis=1).astype("f4")
            rest = ctx.buffer(attributes.tobytes())
            index = ctx.buffer(np.asarray(faces, "u4").tobytes())
            array = ctx.vertex_array(self._body, [(position, "3f", "in_position"),
                                                  (rest, "3f 3f 4f 4f", "in_normal", "in_color", "in_joints",
                                                   "in_weights")], index_buffer=index, index_element_size=4)
            self._meshes[key] = (array, position)
        return self._meshes[key]

    def _begin(self, framing: Framing, feet: np.ndarray, z_center: float) -> None:
        """Clear, set the camera, draw the backdrop with the contact shadow under `feet` (K, 3)."""
        self._target.use()
        self.ctx.enable(self.ctx.DEPTH_TEST | self.ctx.CULL_FACE)  # closed meshes: back faces never show
        self._target.clear(depth=1.0)
        scale = framing.scale
        ground_v = (framing.y_center - framing.ground_y) * scale + self.height / 2
        pixels = framing.project(feet)
        lift = float(np.clip((pixels[:2, 1].max() - ground_v) / scale + 0.1, 0.0, 1.0))
        half_w = float(np.ptp(pixels[:, 0])) / 2 + 0.14 * scale
        program = self._backdrop
        program["size"].value = (self.width, self.height)
        program["horizon"].value = ground_v - 0.12 * scale
        program["wall"].value = tuple(c / 255.0 for c in self.background)
        program["shadow"].value = (float(pixels[:, 0].mean()), ground_v, half_w, 0.035 * scale)
        program["shadow_strength"].value = 0.35 * (0.5 + 0.5 * lift)
        self._screen.render()
        body = self._body
        body["camera"].value = (framing.x_center, framing.y_center, 2 * scale / self.width, 2 * scale / self.height)
        body["depth"].value = (z_center, 0.25)  # +-4 m around the body
        body["pelvis_z"].value = z_center

    def _finish(self) -> np.ndarray:
        self.ctx.copy_framebuffer(self._resolved, self._target)
        pixels = np.frombuffer(self._resolved.read(components=3), dtype=np.uint8)
        return pixels.reshape(self.height, self.width, 3)[::-1]

    def render_skinned(self, body: SkinnedBody, skin: np.ndarray, framing: Framing, feet: np.ndarray,
                       z_center: float) -> np.ndarray:
        """`body` posed by skinning matrices (55, 4, 4) -> uint8 (H, W, 3); `feet`: ankle and foot joints (4, 3)."""
        array, _ = self._vertex_array(id(body), body.vertices, body.normals, body.colors, body.faces, body.joints,
                                      body.weights)
        self._begin(framing, feet, z_center)
        self._body["skinned"].value = True
        self._body["face_normals"].value = False
        self._body["bones"].write(np.ascontiguousarray(np.transpose(skin, (0, 2, 1)), dtype="f4").tobytes())
        array.render()
        return self._finish()

    def render_vertices(self, key: int, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray,
                        framing: Framing, feet: np.ndarray, z_center: float) -> np.ndarray:
        """A mesh given this frame's world vertices (V, 3) and per-vertex colours (V, 3) -> uint8 (H, W, 3)."""
        array, position = self._vertex_array(key, vertices, np.zeros_like(vertices), colors, faces)
        position.write(np.asarray(vertices, "f4").tobytes())
        self._begin(framing, feet, z_center)
        self._body["skinned"].value = False
        self._body["face_normals"].value = True
        array.render()
        return self._finish()
