"""The live page of `omniges serve`: speech over a WebSocket in, motion frames out; streams that end early, clients
that vanish and bad first messages end cleanly; a real browser with a fake microphone moves the figure."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.test_serve import free_port


@pytest.fixture(scope="module")
def live(tiny_checkpoint, tmp_path_factory):
    """(app, ws url, http url) of the app with the tiny checkpoint."""
    from omniges.inference import Omniges
    from omniges.serve import launch

    root = tiny_checkpoint.parents[3]
    model = Omniges.load(tiny_checkpoint, cache_dir=root / "data/cache", rvqvae_dir=root / "results/rvqvae")
    port = free_port()
    app = launch(model, port=port, out_root=tmp_path_factory.mktemp("live"), block=False)
    yield app, f"ws://127.0.0.1:{port}/live/ws", f"http://127.0.0.1:{port}"
    app.close()


def _speech(seconds: float, rate: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    return (3000 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * rng.normal(size=len(t))).clip(-32768, 32767).astype(
        np.int16)


def _server(app):
    return next(r.endpoint.__self__ for r in app.server_app.router.routes if getattr(r, "path", "") == "/live/ws")


def test_speech_in_frames_out(live):
    from websockets.sync.client import connect

    _, ws_url, _ = live
    pcm = _speech(3.0, 48000)
    frames, done = [], None
    with connect(ws_url) as socket:
        socket.send(json.dumps({"sample_rate": 48000, "lookahead": 0.25}))
        for i in range(0, len(pcm), 4800):  # 100 ms messages
            socket.send(pcm[i:i + 4800].tobytes())
        socket.send("end")
        for text in socket:
            message = json.loads(text)
            if "quaternions" in message:
                assert message["start"] == len(frames)  # in order, no gap
                frames += list(zip(message["quaternions"], message["root"], strict=True))
            done = message if message.get("done") else done
    assert abs(len(frames) - 90) <= 1 and done == {"done": True, "frames": len(frames)}
    quats = np.array([q for q, _ in frames])
    assert quats.shape[1:] == (55, 4) and np.allclose(np.linalg.norm(quats, axis=-1), 1, atol=1e-3)
    assert np.abs(np.diff(quats, axis=0)).max() > 1e-4  # the figure moves


def test_a_bad_first_message_is_one_line(live):
    from websockets.sync.client import connect

    with connect(live[1]) as socket:
        socket.send("hello")
        message = json.loads(socket.recv())
    assert "first message must be JSON" in message["error"] and "\n" not in message["error"]


def _rss_mb() -> float:
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_twenty_dropped_connections_leave_nothing_behind(live):
    """Clients that vanish before speaking, mid-word, or after silence: the server's streams, threads and memory
    return to where they were."""
    from websockets.sync.client import connect

    app, ws_url, _ = live
    server = _server(app)
    pcm, silence = _speech(0.7, 16000), np.zeros(16000, np.int16)

    def session(kind: int) -> None:
        socket = connect(ws_url)
        if kind % 3:
            socket.send(json.dumps({"sample_rate": 16000, "lookahead": 0.0}))
            socket.send((pcm if kind % 3 == 1 else silence).tobytes())
            if kind % 2:
                socket.recv(timeout=30)  # a frame came: the stream was mid-speech when the client vanished
        socket.socket.close()  # no close handshake: the client just goes

    session(1)  # warm-up: the first stream builds the lazy WavLM
    time.sleep(0.5)
    threads, memory = threading.active_count(), _rss_mb()
    for kind in range(20):
        session(kind)
    deadline = time.time() + 30
    while (server.active or threading.active_count() > threads) and time.time() < deadline:
        time.sleep(0.1)
    assert server.active == 0
    assert threading.active_count() <= threads
    assert _rss_mb() - memory < 50


def _page_status(url: str, mic: Path, seconds: list[float]) -> list[dict]:
    """The page's #status at each of `seconds` (real time) in headless chromium with a fake microphone playing
    `mic`, read over the DevTools protocol (virtual time would not run the microphone and the socket)."""
    import urllib.request

    from websockets.sync.client import connect

    port = free_port()
    browser = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required",
         f"--remote-debugging-port={port}", "--window-size=640,480", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
                    target = next(p for p in json.load(response) if p["type"] == "page")
                break
            except (OSError, StopIteration):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        began, out = time.time(), []
        with connect(target["webSocketDebuggerUrl"], max_size=None) as devtools:
            for i, at in enumerate(seconds):
                time.sleep(max(0.0, began + at - time.time()))
                devtools.send(json.dumps({"id": i, "method": "Runtime.evaluate", "params": {
                    "expression": "document.getElementById('status').textContent", "returnByValue": True}}))
                reply = json.loads(devtools.recv(timeout=30))
                while reply.get("id") != i:
                    reply = json.loads(devtools.recv(timeout=30))
                out.append(json.loads(reply["result"]["result"]["value"]))
        return out
    finally:
        browser.kill()
        browser.wait()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed (make test installs "
                    "it when it runs as root with apt)")
def test_a_browser_with_a_fake_microphone_moves_the_figure(live, real_clip_paths, tmp_path):
    """Headless chromium opens /live, its fake microphone plays a real speech clip, frames come back and play at
    30 a second after the start-up latency, and the figure's wrist moves."""
    import urllib.request

    _, _, http = live
    wave, sr = sf.read(real_clip_paths["wav"], dtype="float32")
    mic = tmp_path / "mic.wav"
    sf.write(mic, wave[: 6 * sr], sr, subtype="PCM_16")
    with urllib.request.urlopen(http + "/live") as response:  # the redirect to the page with its figure
        page = response.geturl()
    assert "live.html?figure=" in page
    early, late = _page_status(page + "&autostart=1", mic, [6.0, 8.0])
    assert late["loaded"] and late["bones"] == 55 and late["error"] is None, late
    assert early["played"] >= 30 and early["first_frame_s"] is not None, early
    assert 40 <= late["played"] - early["played"] <= 80, (early, late)  # 30 frames a second
    assert late["received"] >= late["played"] and late["wrist_max_m"] > 0.005, late
