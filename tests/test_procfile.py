"""The Procfile's one-machine topology (web, a worker per queue, beat) under honcho: an import uploaded through
the API runs to completion, and SIGTERM stops every process it started."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from datasets.services.synthetic import write_synthetic_edf
from tests.test_hardening import ROOT, child_env, free_port, listening, wait_for

pytestmark = pytest.mark.worker
BIN = Path(sys.executable).parent


def descendants(root: int) -> set[int]:
    """Live (non-zombie) processes below `root`, in any session or process group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state != "Z":
            children.setdefault(int(parent), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def create_curator(env: dict) -> None:
    script = "from core.roles import CURATOR; from core.testing import make_role_user; make_role_user(CURATOR, 'curator')"
    subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, timeout=120)


def test_procfile_topology_imports_a_night_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = child_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "honcho.log"
    with log.open("w") as out:
        honcho = subprocess.Popen([str(BIN / "honcho"), "start", "--port", str(port)], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    started: set[int] = set()
    try:
        wait_for(lambda: listening(port), 180, "the web server to listen", honcho)
        started = descendants(honcho.pid)
        assert set(re.findall(r"system \| (\w+)\.1 started", log.read_text())) == {"web", "io", "cpu", "gpu", "beat"}
        create_curator(env)
        base = f"http://127.0.0.1:{port}"
        token = requests.post(f"{base}/api/auth/token/", data={"username": "curator", "password": "pw-for-tests-123"},
                              timeout=30).json()["token"]
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        night = tmp_path / "night.edf"
        write_synthetic_edf(night, hours=0.25, seed=3)
        with night.open("rb") as f:
            response = api.post(f"{base}/api/imports/", files={"file": ("night.edf", f)}, data={"cohort": "Procfile"},
                                timeout=60)
        assert response.status_code == 201, response.text
        job_url = f"{base}/api/imports/{response.json()['id']}/"

        def finished() -> bool:
            return api.get(job_url, timeout=30).json()["state"] in ("succeeded", "failed", "cancelled")

        wait_for(finished, 300, "the import to finish", honcho)
        job = api.get(job_url, timeout=30).json()
        assert job["state"] == "succeeded", job
        assert job["queue"] == "io" and job["worker"].startswith("io@")  # the io worker of the Procfile took it
        assert api.get(f"{base}/api/recordings/{job['recording']}/", timeout=30).json()["epoch_count"] == 30

        honcho.send_signal(signal.SIGTERM)
        honcho.wait(timeout=60)
        wait_for(lambda: not any(alive(pid) for pid in started), 60, "every process to stop")
        assert not listening(port)
        assert "SIGKILL" not in log.read_text(), log.read_text()[-3000:]  # each one stopped on SIGTERM
    finally:
        if honcho.poll() is None:
            honcho.kill()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
