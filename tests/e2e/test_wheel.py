"""The built wheel works outside the checkout (issue 2, scope 1): build it, install it into a fresh
venv (no system site-packages), run `orchlog serve` from another directory, ingest and read back."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from helpers import REPO, free_port

NETWORK_TROUBLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Max retries exceeded",
    "ConnectTimeoutError",
    "ProxyError",
)


def run(
    cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def pip_or_skip(result: subprocess.CompletedProcess[str], what: str) -> None:
    output = result.stdout + result.stderr
    if result.returncode != 0 and any(marker in output for marker in NETWORK_TROUBLE):
        pytest.skip(f"pip cannot reach the package registry ({what}): {output[-500:]}")
    assert result.returncode == 0, f"{what} failed:\n{output[-4000:]}"


def clean_env() -> dict[str, str]:
    """The environment without orchlog settings, PYTHONPATH or the test venv on PATH."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_installed_wheel_serves_and_ingests_outside_the_checkout(tmp_path: Path) -> None:
    """pip wheel → fresh venv → `orchlog serve` from an unrelated directory: the schema and the
    frontend come from inside the installed package, an event posted is read back."""
    wheels = tmp_path / "wheels"
    # the dev venv's hatchling (when present) saves fetching one into an isolated build env
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(wheels), str(REPO)]
    built = run(cmd, tmp_path, 600)
    pip_or_skip(built, "pip wheel")
    (wheel,) = wheels.glob("orchlog-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("orchlog/_schema/sqlite/0001_") for n in names), names
    assert "orchlog/_frontend/index.html" in names, names
    assert not any(n.startswith(("tests/", "backend/")) for n in names), names

    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, 120)
    assert made.returncode == 0, made.stderr
    vpython = venv / "bin" / "python"
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    installed = run(
        [sys.executable, "-m", "pip", "--python", str(vpython), "install", "--no-input", str(wheel)],
        tmp_path,
        600,
    )
    pip_or_skip(installed, "pip install of the wheel")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env()
    where = run(
        [
            str(vpython),
            "-c",
            "import orchlog, orchlog.paths as p; print(orchlog.__file__); print(p.schema_dir('sqlite'))",
        ],
        elsewhere,
        60,
        env,
    )
    assert where.returncode == 0, where.stderr
    module_file, schema = where.stdout.split()
    assert module_file.startswith(str(venv)), module_file
    assert schema.startswith(str(venv)) and "_schema" in schema, schema
    version = run([str(venv / "bin" / "orchlog"), "--version"], elsewhere, 60, env)
    assert version.returncode == 0 and "orchlog" in version.stdout, version.stdout + version.stderr

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "orchlog"), "serve", "--db", str(tmp_path / "w.db"), "--port", str(port)],
            cwd=elsewhere,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "installed server did not answer /healthz"
            time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=30) as c:
            r = c.post("/api/v1/system-logs", json={"level": "info", "message": "from the wheel"})
            assert r.status_code == 201, r.text
            seq = r.json()["items"][0]["seq"]
            body = c.get("/api/v1/events", params={"after": 0}).json()
            assert [(e["seq"], e["data"]["message"], e["data"]["level"]) for e in body["items"]] == [
                (seq, "from the wheel", "INFO")
            ]
            # package data: the dashboard, the interactive docs' bundle, the generated close codes
            for path in ("/", "/app.js", "/docs/swagger-ui-bundle.js", "/closecodes.js"):
                assert c.get(path).status_code == 200, path
        assert (tmp_path / "w.db").exists()
        assert not (elsewhere / "orchlog.db").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in log.read_text(errors="replace")
