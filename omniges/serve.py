"""`omniges serve`: a Gradio web app for A2G on a local checkpoint: speech in, a video with sound and motion files out.

Offline: analytics off, no share link, no server-side rendering, no run history, fonts and scripts from the gradio
package itself. Generation is `omniges.inference.a2g_to_files`, the path `omniges generate` takes; the motion files
offered for download are the formats in `omniges.inference.MOTION_WRITERS`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from omniges.export import blender_path
from omniges.features.audio import SAMPLE_RATE, AudioError
from omniges.inference import MOTION_WRITERS, Omniges, a2g_to_files, load_speech
from omniges.live import FIGURE, LIVE_PAGE
from omniges.live import mount as mount_live

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no usage reports, no version check
log = logging.getLogger("omniges")
TITLE = "Omniges: speech to 3D gesture"
INTRO = ("Upload or record speech (any format, sample rate or channels; silence gives idle motion). A transcript is "
         "optional: its words are spread evenly over the audio. The result is a video with the speech as its sound "
         "track, a 3D view of the motion, and the motion as files (npz: BEAT2 layout, for Blender's SMPL-X add-on; "
         "bvh; glb: skinned body and animation for engines and web pages; fbx where Blender is installed). "
         "[Live](/live): speak into the microphone and a figure gestures as you speak.")


def download_formats() -> list[str]:
    """The motion files offered for download: every writer's, FBX only where Blender is installed."""
    return [suffix for suffix in MOTION_WRITERS if suffix != ".fbx" or blender_path() is not None]


STATIC = Path(__file__).parent / "static"  # viewer.html and three.js (vendored from npm, three 0.187.0)
FILE_ROUTE = "/gradio_api/file="  # gradio serves allowed paths here, html and js inline


def viewer_html(glb: str | Path | None) -> str:
    """An iframe of the app's own 3D viewer (three.js, offline) playing `glb`; a note without one."""
    if glb is None:
        return "<p>The 3D view of the motion appears here.</p>"
    page = FILE_ROUTE + quote(str(STATIC / "viewer.html"))
    source = quote(FILE_ROUTE + quote(str(Path(glb).resolve())), safe="")
    return (f'<iframe title="3D motion" src="{page}?glb={source}" '
            'style="width:100%;height:480px;border:0;border-radius:8px"></iframe>')


UNKNOWN_SPEAKER = "unknown"  # the speaker dropdown's choice for the unknown-speaker embedding


def generate_for_app(model: Omniges, out_root: Path, audio: str | None, transcript: str, steps: float,
                     guidance: float, seed: float, progress: Any = None,
                     speaker: str | int | None = None) -> tuple[str, list[str]]:
    """One web request: speech file -> (video path, motion file paths); bad input -> gr.Error with the CLI's line."""
    import gradio as gr

    from omniges.render.compare import spread_words

    def refuse(message: str) -> gr.Error:
        log.warning("refused: %s", message)  # one line in the server log too, no traceback
        return gr.Error(message, print_exception=False)

    if not audio:
        raise refuse("no speech: upload an audio file or record some")
    try:
        wave = load_speech(audio)
    except AudioError as error:  # name the file the user gave, not gradio's upload folder
        raise refuse(str(error).replace(str(audio), Path(audio).name)) from None
    words = spread_words(transcript.split(), len(wave) / SAMPLE_RATE) if transcript and transcript.strip() else None
    out = Path(tempfile.mkdtemp(dir=out_root))
    stem = Path(audio).stem
    files = {suffix: out / f"{stem}{suffix}" for suffix in download_formats()}
    video = out / f"{stem}.mp4"
    speaker = None if speaker in (None, UNKNOWN_SPEAKER) else int(speaker)
    a2g_to_files(model, wave, words, video, files, progress=progress, steps=int(steps), guidance=float(guidance),
                 seed=int(seed), speaker=speaker)
    return str(video), [str(path) for path in files.values()]


def build_app(model: Omniges, out_root: str | Path) -> Any:
    """The Gradio Blocks app; results go to fresh folders under `out_root`."""
    import gradio as gr

    settings, out_root = model.settings, Path(out_root)
    formats = ", ".join(suffix.lstrip(".") for suffix in download_formats())

    def run(audio, transcript, steps, guidance, seed, speaker, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        video, files = generate_for_app(model, out_root, audio, transcript, steps, guidance, seed, progress, speaker)
        return video, files, viewer_html(next((f for f in files if f.endswith(".glb")), None))

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech")
                transcript = gr.Textbox(label="Transcript (optional)", placeholder="the words spoken, if known")
                steps = gr.Slider(1, 64, value=settings.steps, step=1, label="Sampler steps")
                guidance = gr.Slider(0.0, 8.0, value=model.guidance_for("a2g"), step=0.1,
                                     label="Classifier-free guidance")
                seed = gr.Number(value=settings.seed, precision=0, label="Seed (same seed, same motion)")
                if model.speakers:  # a checkpoint trained with speaker conditioning lists its speakers
                    default = settings.speaker if settings.speaker in model.speakers else UNKNOWN_SPEAKER
                    speaker = gr.Dropdown([UNKNOWN_SPEAKER, *map(str, model.speakers)], value=str(default),
                                          label="Speaker style")
                else:
                    speaker = gr.State(None)
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                video = gr.Video(label="Gesture video with sound", format=None)
                viewer = gr.HTML(viewer_html(None), label="3D view (drag to orbit; space: play / pause)")
                files = gr.File(label=f"Motion files ({formats})", file_count="multiple")
        button.click(run, [audio, transcript, steps, guidance, seed, speaker], [video, files, viewer],
                     api_name="generate")
    return app


def launch(model: Omniges, *, host: str = "127.0.0.1", port: int = 7860, out_root: str | Path | None = None,
           block: bool = True) -> Any:
    """Build and start the app on host:port (offline); with block=False it returns the running app."""
    out_root = Path(out_root or tempfile.mkdtemp(prefix="omniges-serve-"))
    out_root.mkdir(parents=True, exist_ok=True)
    app = build_app(model, out_root)
    app.queue(default_concurrency_limit=1)  # one generation at a time: the CPU is the limit
    app.launch(server_name=host, server_port=port, share=False, ssr_mode=False, run_history=False,
               footer_links=["api", "settings"], allowed_paths=[str(out_root), str(STATIC)],
               prevent_thread_lock=True, quiet=not block, show_error=True)
    mount_live(app.server_app, model, out_root, live_page_url(out_root / FIGURE))
    if block:
        app.block_thread()
    return app


def live_page_url(figure: Path) -> str:
    """The live page (microphone in, a moving figure out) served by the app, with the rest figure to pose."""
    return (FILE_ROUTE + quote(str(STATIC / LIVE_PAGE)) + "?figure="
            + quote(FILE_ROUTE + quote(str(Path(figure).resolve())), safe=""))
