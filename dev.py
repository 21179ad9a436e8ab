#!/usr/bin/env python3
"""Set up and run tracehive with nothing but python3.

    python3 dev.py demo   # install into .venv, then run the server with demo traffic
    python3 dev.py test   # install into .venv (with test tools), then lint and run every test
    python3 dev.py serve  # install, then run the server (extra arguments go to `tracehive serve`)
    python3 dev.py lock   # re-pin requirements.lock from the current .venv

Installing is skipped when requirements.lock and pyproject.toml have not changed since the last
install (a stamp file in .venv records their hash).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".tracehive-installed"


def run(*cmd: str | Path, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def _digest() -> str:
    h = hashlib.sha256()
    for p in (
        LOCK,
        ROOT / "pyproject.toml",
        ROOT / "setup.py",
        ROOT / "src/tracehive/ingest/_otlp_fast.c",
    ):
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def install() -> None:
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = _digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", LOCK)
    # --no-deps: every dependency comes pinned from the lock; this builds the C decoder.
    run(
        PY,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-build-isolation",
        "-e",
        ".",
    )
    STAMP.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "serve", "lock"):
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "lock":
        out = subprocess.run(
            [str(PY), "-m", "pip", "freeze", "--all", "--exclude-editable"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        lines = [ln for ln in out.splitlines() if ln and not ln.startswith(("tracehive", "pip=="))]
        LOCK.write_text(
            "# pinned by `python3 dev.py lock`; install with dev.py\n"
            + "\n".join(sorted(lines, key=str.lower))
            + "\n"
        )
        return 0
    install()
    env = dict(os.environ)
    if cmd == "demo":
        os.execve(str(VENV / "bin" / "tracehive"), ["tracehive", "demo", *rest], env)
    if cmd == "serve":
        os.execve(str(VENV / "bin" / "tracehive"), ["tracehive", "serve", *rest], env)
    run(PY, "-m", "ruff", "check", "src", "tests", "bench", "dev.py")
    result = subprocess.run([str(PY), "-m", "pytest", *rest], cwd=ROOT)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
