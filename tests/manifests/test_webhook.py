"""Docker Distribution's push notifications keep the inventory fresh within seconds.

Each registry has its own webhook token (made on its page or by `webhook_token
NAME`); the global WEBHOOK_TOKEN is accepted only when a deployment sets it.
"""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry, Tag, WebhookEvent
from registry.images import image_push
from registry.platform import Platform


def _event(repository: str = "a/b", tag: str = "v1", event_id: str = "") -> dict:
    event = {"action": "push", "target": {"repository": repository, "tag": tag}}
    return {**event, "id": event_id} if event_id else event


def _notify(client, name: str, token: str, events: list[dict]):
    return client.post(f"/hooks/registry/{name}", data=json.dumps({"events": events}),
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def queue_up(monkeypatch):
    """Jobs are created but not sent: these tests are about what the webhook accepts, not the scan."""
    from manifests import jobs
    from manifests.services import queue

    monkeypatch.setattr(queue, "queue_available", lambda: True)
    monkeypatch.setattr(jobs, "job_send", lambda job: None)


@pytest.mark.django_db(transaction=True)
def test_a_tag_re_pushed_shows_its_new_digest_after_the_webhook(fresh_registry, live_server, celery_worker, client,
                                                                 django_user_model):
    registry = Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    token = registry.webhook_token_rotate()
    # Distribution sends the registry's own token; no global one is set.
    running = fresh_registry("anonymous", notify_url=f"{live_server.url}/hooks/registry/hooked", notify_token=token)
    Registry.objects.filter(pk=registry.pk).update(url=running.url)
    registry.refresh_from_db()
    with running.client() as rc:
        first = image_push(rc, repository="hook/app", tag="v1", platform=Platform("linux", "amd64"))
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="hooked", params={}).pk)
    assert Tag.objects.get(name="v1").digest == first.digest

    with running.client() as rc:
        second = image_push(rc, repository="hook/app", tag="v1", platform=Platform("linux", "arm64"),
                            content="a new build")
    # Distribution's notification, our webhook, the queue, the worker's scan:
    # seconds; a loaded machine gets room (Distribution backs off on failures).
    deadline = time.monotonic() + 90
    while Tag.objects.get(name="v1").digest != second.digest and time.monotonic() < deadline:
        time.sleep(0.2)
    tag = Tag.objects.get(name="v1")
    assert tag.digest == second.digest, (celery_worker.log()[-2000:], running.log_path.read_text()[-3000:])
    assert tag.platforms == ["linux/arm64"]
    # Distribution gives every event an id: each one was remembered once.
    assert WebhookEvent.objects.filter(registry=registry).count() >= 1
    client.force_login(django_user_model.objects.create_user("viewer"))
    page = client.get("/registries/hooked/r/hook/app/t/v1").content.decode()
    assert second.digest in page and first.digest not in page


@pytest.mark.django_db
def test_the_webhook_refuses_a_wrong_token_and_a_bad_body(client, queue_up):
    registry = Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    token = registry.webhook_token_rotate()
    assert _notify(client, "hooked", "nope", [_event()]).status_code == 401
    bad = client.post("/hooks/registry/hooked", data="{", content_type="application/json",
                      HTTP_AUTHORIZATION=f"Bearer {token}")
    assert bad.status_code == 400 and bad.json()["error"]
    # An unknown registry has no token to match: 401, which tells a stranger nothing.
    assert _notify(client, "nope", token, [_event()]).status_code == 401


@pytest.mark.django_db
def test_each_registry_accepts_only_its_own_token(client, queue_up):
    one = Registry.objects.create(name="one", url="http://127.0.0.1:9", insecure=True)
    two = Registry.objects.create(name="two", url="http://127.0.0.1:8", insecure=True)
    token_one, token_two = one.webhook_token_rotate(), two.webhook_token_rotate()
    assert _notify(client, "one", token_two, [_event()]).status_code == 401
    assert _notify(client, "two", token_one, [_event()]).status_code == 401
    assert _notify(client, "one", token_one, [_event()]).status_code == 202
    assert Registry.objects.get(pk=one.pk).webhook_token_hash != token_one  # only a hash is stored
    # A registry without a token refuses everything while no global token is set.
    Registry.objects.create(name="three", url="http://127.0.0.1:7", insecure=True)
    assert _notify(client, "three", "", [_event()]).status_code == 401


@pytest.mark.django_db
def test_the_global_token_works_only_when_set_explicitly(client, settings, queue_up):
    Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    assert settings.WEBHOOK_TOKEN == ""
    assert _notify(client, "hooked", "global-token", [_event()]).status_code == 401
    settings.WEBHOOK_TOKEN = "global-token"
    assert _notify(client, "hooked", "global-token", [_event()]).status_code == 202
    assert _notify(client, "nope", "global-token", [_event()]).status_code == 404


@pytest.mark.django_db
def test_an_admin_rotates_the_token_on_the_registry_page_and_sees_it_once(client):
    registry = Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    old = registry.webhook_token_rotate()
    call_command("role", "pia", "pusher", "--create", stdout=StringIO())
    client.force_login(User.objects.get(username="pia"))
    assert client.post("/registries/hooked/webhook-token").status_code == 403
    call_command("role", "ada", "admin", "--create", stdout=StringIO())
    client.force_login(User.objects.get(username="ada"))
    assert "Replace the webhook token" in client.get("/registries/hooked/edit").content.decode()
    response = client.post("/registries/hooked/webhook-token")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    new = response.content.decode().split('<pre id="webhook-token">', 1)[1].split("</pre>", 1)[0]
    assert new.startswith("whk_") and new != old
    assert new not in client.get("/registries/hooked/edit").content.decode()  # shown once
    registry.refresh_from_db()
    assert registry.webhook_token_matches(new) and not registry.webhook_token_matches(old)


@pytest.mark.django_db
def test_the_webhook_token_command_prints_a_new_token_and_the_old_one_stops_working(client, queue_up):
    registry = Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    old = registry.webhook_token_rotate()
    out = StringIO()
    call_command("webhook_token", "hooked", stdout=out, stderr=StringIO())
    new = out.getvalue().strip()
    assert _notify(client, "hooked", old, [_event()]).status_code == 401
    assert _notify(client, "hooked", new, [_event()]).status_code == 202


@pytest.mark.django_db
def test_a_repeated_event_is_handled_once(client, queue_up):
    registry = Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    token = registry.webhook_token_rotate()
    first = _notify(client, "hooked", token, [_event(event_id="ev-1")])
    again = _notify(client, "hooked", token, [_event(event_id="ev-1")])  # Distribution retrying
    assert first.status_code == again.status_code == 202
    assert len(first.json()["queued"]) == 1 and again.json()["queued"] == []
    assert Job.objects.filter(kind=Job.KIND_SCAN).count() == 1
    both = _notify(client, "hooked", token, [_event(event_id="ev-1"), _event(tag="v2", event_id="ev-2")])
    assert Job.objects.get(pk=both.json()["queued"][0]).params["tags"] == ["v2"]


@pytest.mark.django_db
def test_an_event_refused_while_the_queue_is_down_is_handled_on_the_retry(client, monkeypatch):
    from manifests import jobs
    from manifests.services import queue

    registry = Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    token = registry.webhook_token_rotate()
    monkeypatch.setattr(queue, "queue_available", lambda: False)
    assert _notify(client, "hooked", token, [_event(event_id="ev-1")]).status_code == 503
    monkeypatch.setattr(queue, "queue_available", lambda: True)
    monkeypatch.setattr(jobs, "job_send", lambda job: None)
    assert len(_notify(client, "hooked", token, [_event(event_id="ev-1")]).json()["queued"]) == 1


@pytest.mark.django_db
def test_the_events_handled_per_request_are_capped(client, settings, queue_up):
    settings.WEBHOOK_MAX_EVENTS = 3
    registry = Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    token = registry.webhook_token_rotate()
    events = [_event(repository=f"r/{i}", event_id=f"ev-{i}") for i in range(10)]
    response = _notify(client, "hooked", token, events)
    assert response.status_code == 202
    assert len(response.json()["queued"]) == 3 and response.json()["ignored"] == 7
    assert Job.objects.count() == 3 and WebhookEvent.objects.count() == 3
