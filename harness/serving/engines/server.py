"""A serving engine's server started for the run: argv from config, a free loopback port, a health check,
its log kept beside the result, and a clean shutdown (SIGTERM to its process group, SIGKILL after a grace)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.serving.engines import http


class ServerError(RuntimeError):
    """The server did not start or did not become healthy; the message ends with its log's last lines."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class Server:
    def __init__(self, server_cfg: dict[str, Any], model_path: str | None, log_path: Path):
        self.cfg, self.log_path = server_cfg, log_path
        self.port = server_cfg["port"] or free_port()
        fill = {"port": str(self.port), "model_path": model_path or ""}
        self.argv = [str(a).format(**fill) for a in server_cfg["command"]]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> float:
        """Start and wait until the health check answers 2xx; returns the seconds it took."""
        t0 = time.perf_counter()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}  # no downloads at run time
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = t0 + self.cfg["startup_timeout_s"]
        async with http.client(1) as probe:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise ServerError(f"server exited with code {self.proc.returncode}: {_tail(self.log_path)}")
                try:
                    await http.get_json(probe, self.origin + self.cfg["health_path"], timeout_s=2)
                    return time.perf_counter() - t0
                except (OSError, ValueError, RuntimeError):  # not up yet (TimeoutError is an OSError)
                    await asyncio.sleep(0.25)
        self.stop()
        raise ServerError(
            f"server not healthy at {self.origin}{self.cfg['health_path']} within "
            f"{self.cfg['startup_timeout_s']:g} s: {_tail(self.log_path)}"
        )

    def stop(self) -> int | None:
        """SIGTERM the server's process group, SIGKILL after shutdown_timeout_s; its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            return self.proc.wait(self.cfg["shutdown_timeout_s"])
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)
        except ProcessLookupError:
            return self.proc.wait(5)
