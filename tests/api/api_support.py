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

from videor1.eval.runner import media_config
from videor1.media.loader import MediaConfig

PIXELS = 84 * 84  # the synthetic clips' frame size: served without resizing
LIMIT = 512 * 1024  # the test server's request bound


def api_media() -> MediaConfig:
    """8 frames at 84x84: the synthetic videos whole, the same settings on both sides."""
    return media_config(8, PIXELS, PIXELS, 28)


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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "videor1.cli", "serve", "--model", str(model), "--port", str(port),
               "--media-root", str(media_root), "--frames", "8", "--max-pixels", str(PIXELS), *extra]
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
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
            yield f"http://127.0.0.1:{port}"
        finally:
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
