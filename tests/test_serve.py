"""`omniges serve`: the Gradio app on a running server, called over real HTTP and opened in a headless browser."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_checkpoint, tmp_path_factory):
    """The app on 127.0.0.1 with the tiny checkpoint; yields its URL and the folder it writes results to."""
    from omniges.inference import Omniges
    from omniges.serve import launch

    root = tiny_checkpoint.parents[3]
    model = Omniges.load(tiny_checkpoint, cache_dir=root / "data/cache", rvqvae_dir=root / "results/rvqvae")
    port = free_port()
    out_root = tmp_path_factory.mktemp("served")
    app = launch(model, port=port, out_root=out_root, block=False)
    yield f"http://127.0.0.1:{port}/", out_root
    app.close()


@pytest.fixture(scope="module")
def server(served):
    return served[0]


def test_a_request_over_http_returns_a_video_with_sound_and_the_motion(server, real_clip_paths, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from omniges.data.beat2 import read_motion
    from omniges.render.video import probe_media

    wave, sr = sf.read(real_clip_paths["wav"], dtype="float32")
    speech = tmp_path / "speech.flac"
    sf.write(speech, np.stack([wave[: 2 * sr]] * 2, 1), sr)  # 2 s, stereo, another container
    client = Client(server, verbose=False)
    job = client.submit(handle_file(speech), "hello world", 1, 1.0, 3, api_name="/generate")
    stages = set()
    while not job.done():
        stages.update(p.desc for p in job.status().progress_data or [])
        time.sleep(0.02)
    video, files, viewer = job.result()
    known = {"generating motion", "writing the motion files", "rendering the video", "render speech.mp4",
             "Loading weights"}  # the last: transformers building the (lazily loaded) WavLM on the first request
    assert stages and stages <= known, stages  # gr.Progress (and the renderer's tqdm bar) reach the client
    media = probe_media(video)
    assert media["has_audio"] and abs(media["duration_video"] - 2.0) < 0.1
    assert [Path(f).suffix for f in files][:3] == [".npz", ".bvh", ".glb"]
    assert "viewer.html?glb=" in viewer and Path(files[2]).name in viewer  # the 3D view plays the .glb
    motion = read_motion(files[0])
    assert Path(files[1]).read_text().startswith("HIERARCHY") and "Frames: 60" in Path(files[1]).read_text()
    assert motion["poses"].shape == (60, 165) and np.isfinite(motion["poses"]).all()

    short = tmp_path / "short.wav"
    sf.write(short, wave[:1600], sr)  # 0.1 s: the CLI's one-line message, naming the file
    with pytest.raises(AppError, match=r"^short\.wav: audio too short \(0\.10 s\)"):
        client.predict(handle_file(short), "", 1, 1.0, 0, api_name="/generate")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed (make test installs "
                    "it when it runs as root with apt)")
def test_the_page_renders_its_inputs_in_a_browser_without_network(server, tmp_path):
    from PIL import Image

    offline = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=20000",
               "--window-size=1280,860"]
    dom = subprocess.run([*offline, "--dump-dom", server], capture_output=True, text=True, timeout=120).stdout
    # rendered by the page's scripts (the served HTML only carries the components as JSON config)
    for element in ('data-testid="waveform-Speech"', 'aria-label="Record audio"',
                    'placeholder="the words spoken, if known"', 'aria-label="range slider for Sampler steps"',
                    'aria-label="range slider for Classifier-free guidance"', 'data-testid="number-input"',
                    ">Generate<"):
        assert element in dom, element
    assert "speaker" not in dom.lower()  # no speaker control: the checkpoint lists no speakers
    shot = tmp_path / "serve.png"
    subprocess.run([*offline, "--hide-scrollbars", f"--screenshot={shot}", server], capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == (1280, 860)
        assert len(set(image.convert("L").resize((64, 43)).getdata())) > 8  # drawn, not a blank page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed (make test installs "
                    "it when it runs as root with apt)")
def test_the_3d_viewer_served_by_the_app_loads_and_animates_the_glb(served, real_clip_paths):
    """three.js (vendored, served by the app) loads the .glb, finds its 55 bones and plays it: the wrist moves."""
    import json
    import re

    from omniges.data.beat2 import read_motion
    from omniges.export import write_glb
    from omniges.serve import viewer_html

    url, out_root = served
    motion = read_motion(real_clip_paths["npz"])
    glb = write_glb(out_root / "clip.glb", motion["poses"][:90], motion["trans"][:90])
    page = re.search(r'src="/([^"]+)"', viewer_html(glb))[1]
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
               "--enable-unsafe-swiftshader", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
               "--virtual-time-budget=15000", "--window-size=640,480", "--dump-dom", url + page]
    dom = subprocess.run(browser, capture_output=True, text=True, timeout=120).stdout
    status = json.loads(re.search(r'<pre id="status">(.*?)</pre>', dom, re.S)[1])
    assert status["loaded"] and status["bones"] == 55, status
    assert abs(status["duration"] - 89 / 30) < 1e-3
    assert status["moved_m"] > 0.01  # the left wrist is elsewhere mid-clip: the animation drives the skeleton
    assert status["ticks"] >= 30 and status["played"] > 1.0  # the page plays it (its 30 Hz animation clock)
    assert status["wrist_max_m"] > 0.01  # and the joint moves while it plays
