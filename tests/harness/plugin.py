"""Loaded with `-p tests.harness.plugin`, before pytest-django reads settings.

Fixes, for this test session, the environment the settings read: a Redis on
a free port (started by a fixture), a test database with a file name the
worker can open, a credentials key shared with the worker.

With TEST_DATABASE=postgres the session runs on PostgreSQL instead: a
throwaway cluster (manifests/stack/postgres.py) is started here, at import,
since the settings read DATABASE_URL once; it is stopped at the end.
"""

from __future__ import annotations

import atexit
import os
import secrets
import tempfile

from cryptography.fernet import Fernet

from manifests.stack.ports import free_port

SESSION_DIR = tempfile.mkdtemp(prefix="mdb-test-")
REDIS_PORT = free_port()

os.environ["REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
os.environ.setdefault("TEST_DATABASE_NAME", os.path.join(SESSION_DIR, "test.sqlite3"))
os.environ["CREDENTIALS_KEY"] = Fernet.generate_key().decode()
# No global webhook token: each registry has its own (tests set WEBHOOK_TOKEN where they test it).
os.environ.pop("WEBHOOK_TOKEN", None)
# DEBUG off and no SECRET_KEY refuses to start: a key of this session, shared with the workers.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
# Email channels, in the workers too, send to the tests' SMTP server (tests/harness/receivers.py).
SMTP_PORT = free_port()
os.environ["EMAIL_HOST"] = "127.0.0.1"
os.environ["EMAIL_PORT"] = str(SMTP_PORT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# TEST_DATABASE: unset runs on whatever DATABASE_URL says (SQLite by default);
# "sqlite" forces SQLite; "postgres" starts a throwaway cluster for the session.
TEST_DATABASE = os.environ.get("TEST_DATABASE", "").lower()
POSTGRES = None
if TEST_DATABASE == "postgres":
    from manifests.stack.postgres import postgres_start

    POSTGRES = postgres_start()
    atexit.register(POSTGRES.stop)  # also if the session dies before pytest_unconfigure
    os.environ["DATABASE_URL"] = POSTGRES.url()
elif TEST_DATABASE == "sqlite":
    os.environ.pop("DATABASE_URL", None)  # the test database is the SQLite file above
elif TEST_DATABASE:
    raise RuntimeError(f"TEST_DATABASE must be sqlite or postgres, not {TEST_DATABASE!r}")


def pytest_report_header(config):
    where = f" (127.0.0.1:{POSTGRES.port})" if POSTGRES else ""
    return f"test database: {TEST_DATABASE or 'from DATABASE_URL'}{where}"


def pytest_unconfigure(config):
    if POSTGRES is not None:
        POSTGRES.stop()
