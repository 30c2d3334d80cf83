"""The image's HEALTHCHECK: asks the process this container runs whether it is well.

PID 1 is gunicorn (GET /healthz), a Celery worker (a ping to its own node) or
beat (alive is enough).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

cmdline = open("/proc/1/cmdline", "rb").read().split(b"\0")
words = [w.decode(errors="replace") for w in cmdline]

if any(w.endswith("celery") for w in words):
    if "worker" not in words:
        sys.exit(0)  # beat: running is all it can say
    node = f"celery@{socket.gethostname()}"
    result = subprocess.run(["celery", "-A", "config", "inspect", "ping", "--timeout", "5", "-d", node],
                            capture_output=True, text=True)
    sys.exit(0 if result.returncode == 0 else 1)

# ALLOWED_HOSTS may not hold 127.0.0.1: send a host it holds.
hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1").split(",") if h.strip()]
host = hosts[0].lstrip(".") if hosts and hosts[0] != "*" else "127.0.0.1"
request = urllib.request.Request(f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz",
                                 headers={"Host": host})
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
