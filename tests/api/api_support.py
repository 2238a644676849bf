"""Helpers of the API tests (an importable module: `conftest` names collide across test folders): a
real app served on a free loopback port (uvicorn in a thread), and the media settings both sides use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from videor1.api.guard import API_KEY_VARIABLE
from videor1.api.server import ServeConfig
from videor1.eval.runner import media_config
from videor1.media.loader import MediaConfig

PIXELS = 84 * 84  # the synthetic clips' frame size: served without resizing
LIMIT = 512 * 1024  # the test server's request bound


def api_media() -> MediaConfig:
    """8 frames at 84x84: the synthetic videos whole, the same settings on both sides."""
    return media_config(8, PIXELS, PIXELS, 28)


def serve_config(model: Path, media_root: Path, **options) -> ServeConfig:
    """The server's settings for the synthetic clips: `api_media()` on the server side."""
    return ServeConfig(model=model, media_roots=[media_root], frames=8, min_pixels=PIXELS, max_pixels=PIXELS,
                       **options)


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    name: str  # the served model name
    root: Path  # the media root (the synthetic dataset)
    model: Path


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """Serve `app` on a free loopback port for the duration of the block; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextlib.contextmanager
def serve_command(model: Path, media_root: Path, log: Path, *extra: str) -> Iterator[str]:
    """`videor1 serve` as a subprocess (the real command) on a free loopback port, with the synthetic
    clips' media settings; yields its base URL once /health answers, interrupts it afterwards."""
    with serve_process(model, media_root, log, *extra) as (_, url):
        yield url


@contextlib.contextmanager
def serve_process(model: Path, media_root: Path, log: Path, *extra: str, env: dict[str, str] | None = None
                  ) -> Iterator[tuple[subprocess.Popen, str]]:
    """`serve_command`'s process and URL; `env`: variables added to the environment (else none of
    $VIDEOR1_API_KEY, which the server reads). Interrupted afterwards unless it has already ended."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "videor1.cli", "serve", "--model", str(model), "--port", str(port),
               "--media-root", str(media_root), "--frames", "8", "--max-pixels", str(PIXELS), *extra]
    environment = {k: v for k, v in os.environ.items() if k != API_KEY_VARIABLE} | (env or {})
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "videor1 serve did not come up"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
                proc.wait(timeout=30)
