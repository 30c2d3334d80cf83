"""Build and run the project's image with Debian's podman, as this machine allows.

Facts of the machine this is written for (and of many CI sandboxes):
- crun fails on hybrid cgroups: every podman command gets `--runtime runc`;
- setting rlimits is forbidden: a containers.conf with `default_ulimits = []`
  (pointed to by CONTAINERS_CONF);
- no image can be pulled: the base `debian:bookworm-slim` is made with
  `debootstrap --variant=minbase bookworm` and `podman import`, once, and
  kept; builds use `--pull=never`;
- containers share the host's network (`--network host`) so they reach the
  harness's registries, Redis and PostgreSQL on 127.0.0.1;
- HTTPS to the package index passes a TLS-inspecting proxy whose CA the host
  holds the Debian way, in /usr/local/share/ca-certificates: the build mounts
  that folder read-only, and the image's own ca-certificates folds it into the
  bundle pip trusts. (Mounting the host's /etc/ssl/certs instead breaks the
  build: ca-certificates' postinst must write there.) The Dockerfile knows
  nothing of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .venv import CACHE, ROOT

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
LOCAL_CA = Path("/usr/local/share/ca-certificates")


def podman_env() -> dict[str, str]:
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, check: bool = True, input: str | None = None, timeout: float = 300,
           ) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", "--runtime", "runc", *args], env=podman_env(), capture_output=True,
                            text=True, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def base_image_ensure() -> None:
    """debian:bookworm-slim, made from Debian's packages if the store lacks it (about 30 s, once)."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    folder = Path(tempfile.mkdtemp(prefix="mdb-debootstrap-"))
    try:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(folder / "root")], check=True,
                       capture_output=True, timeout=600)
        root = folder / "root"
        # What the published slim image leaves out: package caches, lists, docs.
        for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*",
                        "usr/share/doc/*", "usr/share/man/*", "usr/share/locale/*"):
            for path in root.glob(pattern):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, env=podman_env(), check=True,
                       capture_output=True, timeout=300)
        tar.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def image_build(tag: str) -> None:
    mounts = ["-v", f"{LOCAL_CA}:{LOCAL_CA}:ro"] if LOCAL_CA.is_dir() and any(LOCAL_CA.iterdir()) else []
    # --format docker: OCI images have no HEALTHCHECK.
    podman("build", "--pull=never", "--network", "host", "--format", "docker", *mounts, "-t", tag, str(ROOT),
           timeout=900)


def podman_available() -> str:
    """Why podman cannot run here, or '' when it can."""
    for program in ("podman", "runc", "debootstrap"):
        if shutil.which(program) is None:
            return f"{program} is not installed (make test installs it: apt-get install podman runc debootstrap)"
    return ""
