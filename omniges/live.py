"""The live page of `omniges serve`: the browser's microphone streams to the server over a WebSocket, motion frames
stream back, and a 3D figure (three.js, served by the app) moves as the person speaks.

Protocol of `/live/ws`: the page sends one JSON message {"sample_rate": int, "lookahead": seconds}, then binary
messages of mono int16 PCM at that rate, then the text "end" (or just closes). The server answers each hop with
{"start": first frame, "quaternions": [[x, y, z, w] x 55] per frame, "root": [x, y, z] per frame} (the
rotations and pelvis translation the app's .glb animates its skeleton with), an {"error": line} for bad input,
and {"done": true, "frames": n} after "end". One stream generates at a time (the CPU is the limit); a client that
disconnects ends its stream there, and nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from omniges.inference import Omniges
from omniges.streaming import A2GStream, StreamSettings

LIVE_PAGE = "live.html"
FIGURE = "live_figure.glb"
MAX_MESSAGE_SAMPLES = 48000 * 5  # one binary message holds at most 5 s of speech


def figure_glb(folder: Path) -> Path:
    """The skinned body at rest (one frame): the page poses its bones from the streamed frames."""
    from omniges.export import write_glb

    return write_glb(folder / FIGURE, np.zeros((1, 165), np.float32), np.zeros((1, 3), np.float32))


def frames_message(result: dict[str, Any]) -> dict[str, Any]:
    """A stream result as the page's message: per-joint local quaternions and the pelvis position (the .glb's
    animation channels, `omniges.export.gltf`)."""
    from omniges.data.skinned_body import default_body
    from omniges.export.gltf import animation_channels

    quats, root = animation_channels(np.asarray(result["poses"], np.float64), result["trans"], default_body())
    return {"start": int(result["start_frame"]), "quaternions": np.round(quats, 5).tolist(),
            "root": np.round(root, 5).tolist()}


class LiveServer:
    """The WebSocket endpoint: one A2GStream per connection, their hops one at a time on a worker thread."""

    def __init__(self, model: Omniges) -> None:
        self.model = model
        self.lock = asyncio.Lock()
        self.active = 0

    async def handle(self, websocket: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        await websocket.accept()
        self.active += 1
        stream, sent = None, 0
        try:
            stream = await self._open(websocket)
            if stream is None:
                return
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    pcm = np.frombuffer(message["bytes"][: 2 * MAX_MESSAGE_SAMPLES], dtype="<i2")
                    sent += await self._send(websocket, await self._run(stream.push, pcm))
                elif message.get("text") == "end":
                    sent += await self._send(websocket, await self._run(stream.finish))
                    await websocket.send_json({"done": True, "frames": sent})
                    await websocket.close()
                    return
        except WebSocketDisconnect:
            return
        except (ValueError, RuntimeError) as error:  # bad PCM or settings: one line to the page
            await self._refuse(websocket, str(error))
        finally:
            self.active -= 1
            del stream

    async def _open(self, websocket: Any) -> A2GStream | None:
        hello = await websocket.receive()
        if hello["type"] == "websocket.disconnect":
            return None
        try:
            options = json.loads(hello.get("text") or "")
            rate = int(options["sample_rate"])
            settings = StreamSettings(lookahead=float(options.get("lookahead", 0.5)))
            return A2GStream(self.model, settings, sample_rate=rate, seed=int(options.get("seed", 0)))
        except (ValueError, KeyError, TypeError) as error:
            await self._refuse(websocket, f"the first message must be JSON {{\"sample_rate\": Hz, \"lookahead\": s}}:"
                                          f" {error}")
            return None

    async def _run(self, fn: Any, *args: Any) -> list[dict[str, Any]]:
        async with self.lock:
            return await asyncio.to_thread(fn, *args)

    @staticmethod
    async def _send(websocket: Any, results: list[dict[str, Any]]) -> int:
        """Send each result with frames; the number of frames sent."""
        sent = 0
        for result in results:
            if len(result["poses"]):
                await websocket.send_json(frames_message(result))
                sent += len(result["poses"])
        return sent

    @staticmethod
    async def _refuse(websocket: Any, line: str) -> None:
        try:
            await websocket.send_json({"error": line})
            await websocket.close()
        except Exception:  # the client is gone already
            pass


def mount(app: Any, model: Omniges, out_root: Path, page_url: str) -> LiveServer:
    """Add `/live/ws` and `/live` (a redirect to the page) in front of the running Gradio app's routes."""
    from starlette.responses import RedirectResponse
    from starlette.routing import Route, WebSocketRoute

    server = LiveServer(model)
    figure_glb(out_root)
    _ = model.wavlm  # built now (a lazy property), not in the first stream's first hop
    routes = app.router.routes
    routes.insert(0, WebSocketRoute("/live/ws", server.handle))
    routes.insert(0, Route("/live", lambda request: RedirectResponse(page_url)))
    return server
