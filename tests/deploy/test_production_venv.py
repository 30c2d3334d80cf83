"""The production path: a virtualenv from requirements.txt alone runs the worker and the web server.

The dev requirements pull in packages the runtime needs without declaring
them (kombu's Redis transport imports `packaging`); these tests start the
processes from a venv that holds requirements.txt and nothing else.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from manifests.stack.ports import free_port, wait_for_port
from manifests.stack.processes import stop_process
from tests.harness.venv import ROOT, clean_env, production_venv


@pytest.fixture(scope="module")
def venv():
    return production_venv()


@pytest.fixture
def prod_env(venv, tmp_path, redis_server):
    return clean_env(venv, REDIS_URL=redis_server, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                     SECRET_KEY="a-production-test-secret-key-that-is-long-enough-0123456789",
                     DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false")


def test_production_venv_holds_no_dev_package(venv):
    """The venv is what a deployment installs: none of the test tools are in it."""
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print([m for m in "
         "('pytest', 'playwright', 'hypothesis', 'ruff') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_production_venv_worker_answers_ping(venv, prod_env, tmp_path):
    from config.celery import app

    log = tmp_path / "worker.log"
    name = f"prod-{free_port()}@deploytest"
    process = subprocess.Popen(
        [str(venv / "bin" / "celery"), "-A", "config", "worker", "-l", "INFO", "-c", "1", "-n", name,
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=prod_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        replies = []
        while time.monotonic() < deadline and not replies:
            assert process.poll() is None, f"worker died:\n{log.read_text()[-3000:]}"
            replies = app.control.ping(destination=[name], timeout=1.0)
        assert replies == [{name: {"ok": "pong"}}], log.read_text()[-3000:]
    finally:
        stop_process(process, timeout=20)


def test_production_venv_gunicorn_answers_healthz(venv, prod_env, tmp_path):
    subprocess.run([str(venv / "bin" / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
                   cwd=ROOT, env=prod_env, check=True)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [str(venv / "bin" / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1"],
        cwd=ROOT, env=prod_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, timeout=30, process=process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read()) == {"status": "ok"}
    finally:
        stop_process(process)
