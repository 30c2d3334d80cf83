"""The registry form's saving rules: a new URL forgets the recorded token realm; anonymous keeps no secret."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from manifests.models import Registry


def _form(url: str, **extra) -> dict:
    return {"name": "lab", "url": url, "auth": "token", "insecure": "on", "username": "",
            "required_platforms": "linux/amd64", "concurrency": 4, "watch": "", "ca_bundle": "", "secret": "",
            **extra}


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.invalid", None))
    return client


def _lab() -> Registry:
    registry = Registry(name="lab", url="http://127.0.0.1:5000", insecure=True, auth=Registry.AUTH_TOKEN,
                        token_realm_origin="http://127.0.0.1:5001")
    registry.set_secret("stored-token")
    registry.save()
    return registry


@pytest.mark.django_db
def test_a_new_url_forgets_the_recorded_token_realm(admin_client):
    registry = _lab()
    assert admin_client.post("/registries/lab/edit", _form("http://127.0.0.1:5000")).status_code == 302
    registry.refresh_from_db()
    assert registry.token_realm_origin == "http://127.0.0.1:5001"  # same URL: the realm still binds
    assert admin_client.post("/registries/lab/edit", _form("http://127.0.0.1:6000")).status_code == 302
    registry.refresh_from_db()
    assert registry.token_realm_origin == ""  # the next check records the new address's realm
    assert registry.get_secret() == "stored-token"


@pytest.mark.django_db
def test_switching_to_anonymous_drops_the_stored_secret_and_a_typed_one(admin_client):
    registry = _lab()
    response = admin_client.post("/registries/lab/edit", _form("http://127.0.0.1:5000", auth="anonymous",
                                                              username="ci", secret="typed"))
    assert response.status_code == 302
    registry.refresh_from_db()
    assert (registry.username, registry.secret_encrypted) == ("", "")


@pytest.mark.django_db
def test_the_remove_box_only_shows_when_a_secret_is_stored(admin_client):
    assert b'name="clear_secret"' not in admin_client.get("/registries/new").content
    _lab()
    assert b'name="clear_secret"' in admin_client.get("/registries/lab/edit").content
