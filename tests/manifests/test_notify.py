"""Notifications: channels, deliveries on the real worker, a real HTTP receiver and a real SMTP server."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import override_settings

from manifests.models import Channel, Delivery, Event, Registry
from manifests.scan.fanout import scan_submit
from manifests.services import notify
from manifests.services.events import event_record
from registry.images import image_push, index_push
from registry.platform import Platform
from tests.harness import plugin
from tests.harness.receivers import http_receiver_start, smtp_receiver_start

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
SECRET = "hook-secret-4f1c"


@pytest.fixture
def http_receiver():
    receiver = http_receiver_start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def smtp_receiver():
    receiver = smtp_receiver_start(plugin.SMTP_PORT)
    yield receiver
    receiver.stop()


def _admin() -> User:
    user = User.objects.create_user("ada")
    user.groups.add(Group.objects.get(name="admin"))
    return user


def _verified(received) -> dict:
    """The body of a webhook request whose signature checks out, as a receiver would verify it."""
    timestamp = received.headers["x-manifests-timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + received.body,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["x-manifests-signature"], expected)
    return json.loads(received.body)


@pytest.mark.django_db(transaction=True)
def test_a_lost_platform_reaches_the_webhook_slack_and_email_through_the_worker(
        fresh_registry, celery_worker, wait_job, http_receiver, smtp_receiver):
    running = fresh_registry("anonymous")
    with running.client() as client:
        images = [image_push(client, repository="team/app", tag=None, platform=p) for p in (AMD64, ARM64)]
        index = index_push(client, repository="team/app", tag="v1", children=[i.descriptor() for i in images])
    registry = Registry.objects.create(name="drift", url=running.url, insecure=True)
    notify.channel_create(name="hook", kind="webhook", url=http_receiver.url + "/hook", secret=SECRET,
                          events=["platform_lost"], registry="drift", repository="team/*")
    notify.channel_create(name="chat", kind="slack", url=http_receiver.url + "/slack", events=["platform_lost"])
    notify.channel_create(name="ops", kind="email", to="ops@example.com", events=["platform_lost"])
    notify.channel_create(name="elsewhere", kind="webhook", url=http_receiver.url + "/other",
                          repository="other/*")
    smtp_receiver.messages.clear()

    assert wait_job(scan_submit(registry=registry, repository="team/app").pk).status == "succeeded"
    with running.client() as client:
        amd64_only = image_push(client, repository="team/app", tag="v1", platform=AMD64, content="rebuilt")
    assert wait_job(scan_submit(registry=registry, repository="team/app").pk).status == "succeeded"

    received = {r.path: r for r in http_receiver.wait(2)}
    assert set(received) == {"/hook", "/slack"}  # not the channel scoped to other/*
    body = _verified(received["/hook"])
    assert body["event"] == "platform_lost" and body["platforms"] == ["linux/arm64"]
    assert (body["registry"], body["repository"], body["tag"]) == ("drift", "team/app", "v1")
    assert (body["old_digest"], body["new_digest"]) == (index.digest, amd64_only.digest)
    assert body["url"].endswith("/registries/drift/r/team/app/t/v1")
    assert "linux/arm64" in json.loads(received["/slack"].body)["text"]

    mail = smtp_receiver.wait(1)[0]
    assert mail["X-Envelope-To"] == "ops@example.com"
    assert "platform_lost" in mail["Subject"] and "team/app:v1" in mail["Subject"]
    assert "linux/arm64" in mail.get_payload()
    event = Event.objects.get(kind="platform_lost")
    assert sorted(Delivery.objects.filter(event=event).values_list("channel__name", "status")) == [
        ("chat", "sent"), ("hook", "sent"), ("ops", "sent")]


@pytest.mark.django_db(transaction=True)
def test_send_test_posts_a_test_message_through_the_worker(client, celery_worker, http_receiver):
    channel = notify.channel_create(name="hook", kind="webhook", url=http_receiver.url + "/t", secret=SECRET)
    client.force_login(User.objects.create_superuser("root"))  # a transactional test has no role groups
    response = client.post(f"/channels/{channel.pk}/test")
    assert response.status_code == 302
    body = _verified(http_receiver.wait(1)[0])
    assert body["event"] == "test" and "hook" in body["detail"]


@pytest.fixture
def event(db) -> Event:
    registry = Registry.objects.create(name="one", url="http://127.0.0.1:9")
    return Event.objects.create(kind="platform_lost", registry=registry, repository="team/app", tag="v1",
                                platforms=["linux/arm64"])


@override_settings(NOTIFY_MAX_ATTEMPTS=2)
def test_a_failing_receiver_is_retried_then_given_up_with_the_error_logged(event, http_receiver):
    """delivery_send is called here as the task calls it; the worker's retry policy is the task's decorator."""
    http_receiver.status = 500
    channel = notify.channel_create(name="hook", kind="webhook", url=http_receiver.url)
    delivery = Delivery.objects.create(channel=channel, event=event)
    with pytest.raises(notify.DeliveryRetry):
        notify.delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "answered 500" in delivery.last_error
    notify.delivery_send(delivery_id=delivery.pk)  # the last attempt: no retry raised
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert len(http_receiver.requests) == 2


def test_a_redirect_is_not_followed(event, http_receiver):
    elsewhere = http_receiver_start()
    try:
        http_receiver.status = 307
        http_receiver.extra_headers = {"Location": elsewhere.url + "/stolen"}
        channel = notify.channel_create(name="hook", kind="webhook", url=http_receiver.url, secret=SECRET)
        delivery = Delivery.objects.create(channel=channel, event=event)
        with pytest.raises(notify.DeliveryRetry):
            notify.delivery_send(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert "redirect, not followed" in delivery.last_error
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_slack_text_cannot_be_turned_into_links_or_mentions_by_registry_strings(event, http_receiver):
    event.detail = "<!channel> <https://evil.example|click>"
    event.save()
    channel = notify.channel_create(name="chat", kind="slack", url=http_receiver.url)
    notify.delivery_send(delivery_id=Delivery.objects.create(channel=channel, event=event).pk)
    text = json.loads(http_receiver.requests[0].body)["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_the_api_adds_a_channel_and_never_echoes_its_secret(client, db):
    client.force_login(_admin())
    response = client.post("/api/v1/channels", data=json.dumps({
        "name": "hook", "kind": "webhook", "url": "https://hooks.example.com/x", "secret": "s3cret",
        "events": ["platform_lost", "child_missing"], "repository": "team/*"}), content_type="application/json")
    assert response.status_code == 201, response.json()
    assert "s3cret" not in response.content.decode() and response.json()["has_secret"] is True
    channel = Channel.objects.get(name="hook")
    assert "s3cret" not in channel.secret_encrypted and channel.get_secret() == "s3cret"
    assert channel.events == ["platform_lost", "child_missing"]
    listed = client.get("/api/v1/channels").content.decode()
    assert "hook" in listed and "s3cret" not in listed


def test_the_api_refuses_a_bad_channel_field_by_field(client, db):
    client.force_login(_admin())
    response = client.post("/api/v1/channels", data=json.dumps({
        "name": "x", "kind": "webhook", "url": "ftp://nowhere", "events": ["nonsense"], "registry": "ghost"}),
        content_type="application/json")
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"url", "events", "registry"}
    email = client.post("/api/v1/channels", data=json.dumps({"name": "m", "kind": "email", "to": "not-an-address"}),
                        content_type="application/json")
    assert email.status_code == 400 and "to" in email.json()["fields"]


def test_a_viewer_may_not_add_channels(client, db):
    user = User.objects.create_user("vera")
    user.groups.add(Group.objects.get(name="viewer"))
    client.force_login(user)
    response = client.post("/api/v1/channels", data=json.dumps({"name": "x", "kind": "email", "to": "a@b.c"}),
                           content_type="application/json")
    assert response.status_code == 403
    assert client.post("/channels/", {"name": "x", "kind": "email", "to": "a@b.c"}).status_code == 302
    assert not Channel.objects.exists()


def test_the_channels_page_shows_errors_at_their_field_and_escapes_names(client, db):
    client.force_login(_admin())
    response = client.post("/channels/", {"name": "<b>x</b>", "kind": "webhook", "url": "javascript:alert(1)"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="ch-url-error"' in page and 'aria-describedby="ch-url-error"' in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert client.post("/channels/", {"name": "<b>x</b>", "kind": "email", "to": "ops@example.com",
                                      "events": ["child_missing"]}).status_code == 302
    page = client.get("/channels/").content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page and "child_missing" in page


def test_recording_an_event_queues_only_the_channels_that_subscribe(db, django_capture_on_commit_callbacks):
    registry = Registry.objects.create(name="one", url="http://127.0.0.1:9")
    notify.channel_create(name="all", kind="email", to="a@example.com")
    notify.channel_create(name="lost", kind="email", to="a@example.com", events=["platform_lost"])
    notify.channel_create(name="other-registry", kind="email", to="a@example.com", registry="one")
    Channel.objects.filter(name="other-registry").update(registry=Registry.objects.create(
        name="two", url="http://127.0.0.1:9"))
    notify.channel_create(name="team", kind="email", to="a@example.com", repository="team/*")
    with django_capture_on_commit_callbacks() as callbacks:
        event = event_record(kind="child_missing", registry=registry, repository="team/app", tag="v1")
    assert sorted(Delivery.objects.filter(event=event).values_list("channel__name", flat=True)) == ["all", "team"]
    assert len(callbacks) == 2  # one task per delivery, sent once the transaction commits


@pytest.mark.django_db(transaction=True)
def test_a_child_deleted_under_a_list_reaches_the_webhook_after_a_registry_scan(
        fresh_registry, celery_worker, wait_job, http_receiver):
    """No one presses Check children: the periodic whole-registry scan notices it once the list's
    last check is older than CHILDREN_CHECK_SECONDS (aged here instead of waiting a day)."""
    from tests.manifests.test_events import _age_checks

    running = fresh_registry("anonymous")
    with running.client() as client:
        images = [image_push(client, repository="team/app", tag=None, platform=p) for p in (AMD64, ARM64)]
        index_push(client, repository="team/app", tag="v1", children=[i.descriptor() for i in images])
    registry = Registry.objects.create(name="clean", url=running.url, insecure=True)
    notify.channel_create(name="hook", kind="webhook", url=http_receiver.url, secret=SECRET,
                          events=["child_missing"])
    assert wait_job(scan_submit(registry=registry).pk).status == "succeeded"
    with running.client() as client:
        client.request("DELETE", f"/v2/team/app/manifests/{images[1].digest}", op="DELETE manifest", ok=(202,))
    _age_checks("team/app")
    job = wait_job(scan_submit(registry=registry).pk)
    assert job.status == "succeeded" and job.result["children_checked"] == 2
    body = _verified(http_receiver.wait(1)[0])
    assert (body["event"], body["tag"], body["platforms"]) == ("child_missing", "v1", ["linux/arm64"])
    assert images[1].digest in body["detail"]
