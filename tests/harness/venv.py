"""A virtualenv holding requirements.txt alone, as a deployment installs it.

Built once per content of requirements.txt (and interpreter version) and kept
under var/test-cache/, so a second run costs nothing; pip reuses the wheels it
already downloaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "test-cache"


def requirements_key() -> str:
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


def production_venv() -> Path:
    """The path of a venv made from requirements.txt only (built if missing)."""
    folder = CACHE / f"venv-{requirements_key()}"
    CACHE.mkdir(parents=True, exist_ok=True)
    # A venv holds absolute paths, so it is built in place; a lock keeps two
    # sessions from building the same one.
    with open(CACHE / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".complete").exists():
            for stale in CACHE.glob("venv-*"):  # earlier requirements.txt
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            # The base interpreter, not this venv: nothing of the dev requirements leaks in.
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(folder)], check=True)
            subprocess.run(
                [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 "-r", str(ROOT / "requirements.txt")],
                check=True, env=clean_env(folder))
            (folder / ".complete").touch()
    return folder


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """This environment without the test venv on any path, with `venv` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(venv)
    env.update(extra)
    return env
