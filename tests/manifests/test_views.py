"""Pages and permissions, through Django's test client (the browser tests cover what a person sees)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from manifests.models import Job, Manifest, ManifestChild, Registry, Repository, Tag

SECRET = "s3cr3t-registry-password"


def _user(name: str, role: str | None = None) -> User:
    user = User.objects.create_user(name)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def registry(db) -> Registry:
    row = Registry(name="corp", url="https://registry.example.invalid", auth=Registry.AUTH_BASIC, username="robot")
    row.set_secret(SECRET)
    row.save()
    return row


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/registries/corp/", "/coverage", "/build/", "/jobs/", "/api/v1/coverage"])
def test_every_page_but_health_and_webhook_needs_a_login(client, registry, path):
    response = client.get(path)
    assert response.status_code in (302, 401)
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_a_viewer_reads_but_cannot_build_push_or_manage(client, registry):
    client.force_login(_user("vera", "viewer"))
    assert client.get("/registries/corp/").status_code == 200
    assert client.get("/build/").status_code == 403
    assert client.post("/build/push", {"registry": "corp"}).status_code == 403
    assert client.get("/registries/new").status_code == 403
    assert client.post("/registries/corp/delete").status_code == 403
    assert b"Build a list" not in client.get("/").content


@pytest.mark.django_db
def test_a_push_group_limits_who_may_push_to_a_registry(client, registry):
    team = Group.objects.create(name="team-a")
    registry.push_groups.add(team)
    outsider = _user("otto", "pusher")
    insider = _user("ida", "pusher")
    insider.groups.add(team)
    assert not registry.can_push(outsider) and registry.can_push(insider)
    client.force_login(outsider)
    assert "corp" not in client.get("/build/").content.decode()
    client.force_login(insider)
    assert 'value="corp"' in client.get("/build/").content.decode()


@pytest.mark.django_db
def test_credentials_are_encrypted_at_rest_and_never_rendered(client, registry):
    raw = Registry.objects.filter(pk=registry.pk).values_list("secret_encrypted", flat=True).get()
    assert SECRET not in raw and raw.startswith("gAAAA")
    assert Registry.objects.get(pk=registry.pk).get_secret() == SECRET
    client.force_login(_user("ada", "admin"))
    page = client.get("/registries/corp/edit").content.decode()
    assert SECRET not in page and raw not in page
    assert "A secret is stored" in page
    # Saving the form without typing a secret keeps the stored one.
    data = {"name": "corp", "url": "https://registry.example.invalid", "auth": "basic", "username": "robot",
            "required_platforms": "linux/amd64", "concurrency": 4, "watch": "", "ca_bundle": "", "secret": ""}
    assert client.post("/registries/corp/edit", data).status_code == 302
    assert Registry.objects.get(pk=registry.pk).get_secret() == SECRET


@pytest.mark.django_db
def test_bad_registry_input_gets_a_message_next_to_the_field(client, db):
    client.force_login(_user("ada", "admin"))
    page = client.post("/registries/new", {"name": "x", "url": "http://10.0.0.1:5000", "auth": "basic",
                                            "required_platforms": "linux", "concurrency": 99}).content.decode()
    assert "A plain http URL needs the insecure flag." in page
    assert "A username is needed" in page and "Give the password or token." in page
    assert "is not a platform" in page and "Between 1 and 32." in page
    assert not Registry.objects.exists()


@pytest.mark.django_db
def test_registry_add_reads_the_password_from_stdin_and_never_from_argv(db, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    out = io.StringIO()
    call_command("registry_add", "hub", "https://registry-1.docker.io", "--username", "me", "--password-stdin",
                 "--repositories", "library/alpine,me/app", stdout=out)
    registry = Registry.objects.get(name="hub")
    assert registry.get_secret() == SECRET and SECRET not in out.getvalue()
    assert registry.watch_list == ["library/alpine", "me/app"]
    call_command("registry_add", "hub", "https://registry-1.docker.io", stdout=out)  # update: anonymous now
    assert Registry.objects.get(name="hub").secret_encrypted == ""


@pytest.mark.django_db
def test_credentials_rotate_re_encrypts_with_the_new_key(db, settings, registry):
    from cryptography.fernet import Fernet

    old_key = settings.CREDENTIALS_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [new_key, old_key]
    call_command("credentials_rotate", stdout=io.StringIO())
    settings.CREDENTIALS_KEYS = [new_key]
    assert Registry.objects.get(pk=registry.pk).get_secret() == SECRET


@pytest.mark.django_db
def test_registry_provided_strings_are_escaped_everywhere(client, registry):
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    repository = Repository.objects.create(registry=registry, name="evil/app", error=hostile)
    manifest = Manifest.objects.create(digest="sha256:" + "a" * 64, media_type="application/vnd.oci.image.index.v1+json",
                                       kind="index", raw=b'{"annotations": {"x": "' + hostile.encode() + b'"}}')
    ManifestChild.objects.create(parent=manifest, position=0, digest="sha256:" + "b" * 64, media_type="x",
                                 annotations={"org.example": hostile}, is_attestation=True, subject=hostile)
    Tag.objects.create(repository=repository, name="v1", digest=manifest.digest, manifest=manifest, kind="index",
                       error=hostile)
    Job.objects.create(kind="scan", registry=registry, target="corp", error=hostile, status="failed")
    client.force_login(_user("vera", "viewer"))
    for path in ("/registries/corp/", "/registries/corp/r/evil/app/", "/registries/corp/r/evil/app/t/v1",
                 "/jobs/", f"/jobs/{Job.objects.get().pk}/"):
        page = client.get(path).content.decode()
        assert "<script>alert(1)" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(1)" in page or "&lt;img" in page, path


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_without_inline_script(client, registry):
    client.force_login(_user("vera", "viewer"))
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in response.content.decode()
