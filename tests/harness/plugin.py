"""Loaded with `-p tests.harness.plugin`, before pytest-django reads settings.

Fixes, for this test session, the environment the settings read: a Redis on
a free port (started by a fixture), a test database with a file name the
worker can open, a credentials key shared with the worker.
"""

from __future__ import annotations

import os
import tempfile

from cryptography.fernet import Fernet

from .ports import free_port

SESSION_DIR = tempfile.mkdtemp(prefix="mdb-test-")
REDIS_PORT = free_port()

os.environ["REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
os.environ.setdefault("TEST_DATABASE_NAME", os.path.join(SESSION_DIR, "test.sqlite3"))
os.environ["CREDENTIALS_KEY"] = Fernet.generate_key().decode()
os.environ["WEBHOOK_TOKEN"] = "test-webhook-token"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
