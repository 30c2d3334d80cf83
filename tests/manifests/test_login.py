"""Logins through the real login page: failures throttled (django-axes); settings that refuse to start unsafe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "the-right-password"


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _login(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_account_out_with_a_message_on_the_login_page(client, settings, fast_hasher):
    User.objects.create_user("ada", password=PASSWORD)
    User.objects.create_user("bob", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        page = _login(client, "ada", "wrong")
        assert page.status_code == 200 and "Please enter a correct username" in page.content.decode()
    locked = _login(client, "ada", "wrong")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed logins" in text and 'name="username"' in text  # the login page, saying why
    # Locked out: even the right password is refused now, from this address.
    right = _login(client, "ada", PASSWORD)
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    # Neither another user from the same address nor the same user elsewhere is locked out.
    assert _login(client, "bob", PASSWORD).status_code == 302
    client.logout()
    assert _login(client, "ada", PASSWORD, address="127.0.0.2").status_code == 302


@pytest.mark.django_db
def test_a_successful_login_forgets_the_earlier_failures(client, settings, fast_hasher):
    User.objects.create_user("ada", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "ada", "wrong")
    assert _login(client, "ada", PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "ada", "wrong").status_code == 200
    assert _login(client, "ada", PASSWORD).status_code == 302


def _settings_run(tmp_path: Path, env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter whose settings see only `env` and no var/ of a checkout.

    The config package is copied to an empty folder so that settings'
    BASE_DIR has no var/secret.key, whatever this checkout holds.
    """
    shutil.copytree(ROOT / "config", tmp_path / "config")
    base = {key: value for key, value in os.environ.items()
            if key not in ("SECRET_KEY", "SECRET_KEY_FILE", "DEBUG", "SECURE_HTTPS", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**base, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "DJANGO_SETTINGS_MODULE": "config.settings",
             "ALLOWED_HOSTS": "testserver", **env})


def test_the_settings_refuse_to_start_with_debug_off_and_no_secret_key(tmp_path):
    result = _settings_run(tmp_path, {"DEBUG": "false"}, "import config.settings")
    assert result.returncode != 0 and "SECRET_KEY is required" in result.stderr
    # With DEBUG on, a key of this process only: no constant from the code.
    keys = {_settings_run(tmp_path / str(i), {"DEBUG": "true"},
                          "import config.settings as s; print(s.SECRET_KEY)").stdout.strip() for i in range(2)}
    assert len(keys) == 2 and all(len(key) >= 50 for key in keys)
    assert "SECRET_KEY = \"" not in (ROOT / "config" / "settings.py").read_text()


@pytest.mark.parametrize(("secure", "header"), [("true", "max-age=31536000"), ("false", None)])
def test_hsts_is_sent_when_secure_https_is_on(tmp_path, secure, header):
    code = ("import django; django.setup(); from django.test import Client; "
            "r = Client().get('/healthz', secure=True); print(r.status_code, r.headers.get('Strict-Transport-Security'))")
    result = _settings_run(tmp_path, {"SECRET_KEY": "k" * 50, "SECURE_HTTPS": secure}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", str(header)]
