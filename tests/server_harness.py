"""A real ``tracehive serve`` process on loopback, for tests that use the real clients."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

_HTTP = re.compile(r"tracehive listening on (http://\S+)")
_GRPC = re.compile(r"OTLP/gRPC on (http://\S+)")
_KEY = re.compile(r"^\s+(thk_\S+)\s*$")


class ServerProcess:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.grpc_url = ""
        self.bootstrap_key: str | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 60) -> ServerProcess:
        env = {**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracehive",
                "serve",
                "--data",
                str(self.data_dir),
                "--http-port",
                "0",
                "--grpc-port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError("server exited:\n" + "".join(self.output))
                continue
            self.output.append(line)
            if m := _HTTP.search(line):
                self.url = m.group(1)
            elif m := _GRPC.search(line):
                self.grpc_url = m.group(1)
            elif m := _KEY.match(line):
                self.bootstrap_key = m.group(1)
            elif line.startswith("data dir:"):
                break
        else:
            raise RuntimeError("server did not start:\n" + "".join(self.output))
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def create_key(self, permissions: str = "ingest,query", env: str = "development") -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracehive",
                "keys",
                "create",
                "--data",
                str(self.data_dir),
                "--env",
                env,
                "--permissions",
                permissions,
                "--quiet",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def client(self, key: str | None) -> httpx.Client:
        headers = {"x-honeycomb-team": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
