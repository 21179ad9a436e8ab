"""``tracehive demo``: the quick start's main job. Server plus the instrumented Cruddur app; its
spans arrive and are queryable, and Ctrl-C flushes the app's telemetry before the server
closes (no exporter errors, exit 0)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx

_HTTP = re.compile(r"tracehive listening on (http://\S+)")
_KEY = re.compile(r"demo traffic: .* with key (thk_\S+)")


def _count(url: str, key: str) -> int:
    spec = {"calculations": [{"op": "COUNT"}], "time_range": 600}
    with httpx.Client(base_url=url, headers={"x-honeycomb-team": key}, timeout=10) as c:
        r = c.post("/1/queries/backend-flask", json=spec)
        if r.status_code != 200:  # the dataset appears with the first write
            return 0
        r = c.post("/1/query_results/backend-flask", json={"query_id": r.json()["id"]})
        assert r.status_code == 201, r.text
        result = r.json()
        while not result["complete"]:
            time.sleep(0.05)
            result = c.get(f"/1/query_results/backend-flask/{result['id']}").json()
    rows = result["data"]["results"]
    return rows[0]["data"]["COUNT"] if rows else 0


def test_demo_serves_traffic_and_stops_cleanly(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracehive",
            "demo",
            "--data",
            str(tmp_path / "data"),
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--rate",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    url = key = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while (url is None or key is None) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            url = url or (m.group(1) if (m := _HTTP.search(line)) else None)
            key = key or (m.group(1) if (m := _KEY.search(line)) else None)
        assert url and key, "".join(lines)
        deadline = time.monotonic() + 60
        while _count(url, key) < 20:
            assert time.monotonic() < deadline, "no demo spans arrived"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + out
    assert proc.returncode == 0, output
    for noise in ("Connection refused", "Failed to export", "Traceback"):
        assert noise not in output, output
