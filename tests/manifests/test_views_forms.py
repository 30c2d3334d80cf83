"""The forms behind the API's and the builder's writes, the queue banner's context processor, the job properties."""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth.models import Group, User
from django.http import QueryDict

from manifests.forms.builder import BuilderForm, builder_data
from manifests.forms.lists import MAX_SOURCES, ChannelCreateForm, ListCreateForm, PromotionCreateForm
from manifests.models import Job, Registry, Rule
from manifests.services import queue
from manifests.services.webhook import EnvelopeInvalid, envelope_events

BANNER = "The task queue (Redis) is unreachable"


@pytest.fixture
def registry(db) -> Registry:
    return Registry.objects.create(name="corp", url="http://127.0.0.1:9", insecure=True)


@pytest.mark.django_db
def test_the_list_form_gives_each_field_its_own_message(registry):
    form = ListCreateForm({"registry": "nope", "sources": [{"reference": "app:v1"}, "app:v2", {"reference": "app:v3", "annotations": "a=b"}],
                           "annotations": {"a": 1}, "target": "", "expect_digest": 5})
    assert not form.is_valid()
    errors = form.api_errors()
    assert errors["registry"] == ["no registry named 'nope'"]
    assert errors["sources.1"] == ["each source must be an object with a reference"]
    assert "sources.0" not in errors and errors["sources.2"] == ["annotations must be an object of strings"]
    assert errors["annotations"] == ["annotations must be an object of strings"]
    assert errors["target"] == ["give the target as repository:tag"]
    assert errors["expect_digest"] == ['a digest, "" for a tag that must not exist yet, or null']


@pytest.mark.django_db
def test_the_list_form_bounds_the_sources_and_cleans_a_good_body(registry):
    empty = ListCreateForm({"registry": "corp", "sources": [], "target": "app:multi"})
    assert not empty.is_valid() and empty.api_errors() == {"sources": ["give a non-empty list of sources"]}
    many = ListCreateForm({"registry": "corp", "sources": [{"reference": "app:v1"}] * (MAX_SOURCES + 1),
                           "target": "app:multi"})
    assert not many.is_valid() and list(many.api_errors()) == ["sources"]
    good = ListCreateForm({"registry": "corp", "sources": [{"reference": "app:v1"}], "target": "app:multi"})
    assert good.is_valid(), good.errors
    assert good.cleaned_data["registry"] == registry and good.cleaned_data["format"] == "auto"
    assert good.cleaned_data["annotations"] == {} and good.cleaned_data["expect_digest"] is None


def test_the_promotion_form_gives_each_field_its_own_message():
    form = PromotionCreateForm({"from": "dev/app:v1", "platforms": "linux/amd64", "expect_digest": 1})
    assert not form.is_valid()
    assert form.api_errors() == {"from": ['give {"registry", "reference"}'], "to": ['give {"registry", "target"}'],
                                 "platforms": ["a list of platforms such as linux/amd64"],
                                 "expect_digest": ['a digest, "" for a tag that must not exist yet, or null']}
    good = PromotionCreateForm({"from": {"registry": "dev", "reference": "app:v1"}, "to": {"registry": "prod"}})
    assert good.is_valid() and good.cleaned_data["platforms"] is None and good.cleaned_data["expect_digest"] is None


def test_the_channel_form_wants_strings_and_a_list_of_events():
    form = ChannelCreateForm({"name": 3, "kind": "webhook", "url": ["x"], "events": "push"})
    assert not form.is_valid()
    assert form.api_errors() == {"name": ["must be a string"], "url": ["must be a string"],
                                 "events": ["must be a list of event kinds"]}
    good = ChannelCreateForm({"name": "ops", "kind": "slack", "url": "http://127.0.0.1:9/hook"})
    assert good.is_valid() and good.cleaned_data["to"] == "" and good.cleaned_data["events"] == []


def test_the_builder_form_turns_a_post_into_plain_data():
    posted = QueryDict(mutable=True)
    posted.update({"target": "  app:multi  ", "annotations": " a=b "})
    posted.setlist("e_ref", ["app@sha256:" + "a" * 64, "app:v2"])
    posted.setlist("e_os", ["linux"])
    data = builder_data(posted)
    assert data["target"] == "app:multi" and data["annotations"] == " a=b "
    assert data["format"] == "auto"  # not sent: buildx's default
    assert data["e_ref"] == ["app@sha256:" + "a" * 64, "app:v2"] and data["e_os"] == ["linux"] and data["e_arch"] == []
    assert not isinstance(data["e_ref"], QueryDict) and BuilderForm(posted).is_valid()
    assert builder_data(QueryDict("format="))["format"] == ""  # sent empty: the preview says so


def test_a_webhook_body_that_is_no_envelope_is_refused_without_assert():
    for body in (b"not json", b"[]", b'{"events": {}}', b'{"events": null}', b"[" * 100000):
        with pytest.raises(EnvelopeInvalid):
            envelope_events(body)
    events = envelope_events(b'{"events": [{"action": "pull", "target": {}}, {"action": "push", "target": {}}, 3]}')
    assert events == [{"action": "push", "target": {}}]


def test_job_properties_name_kinds_and_statuses():
    job = Job(kind=Job.KIND_PUSH, status=Job.STATUS_FAILED)
    assert job.is_push and job.moves_tag and job.is_failed and job.is_done
    assert not (job.is_scan or job.is_queued or job.is_running or job.is_succeeded)
    assert Job(kind=Job.KIND_ROLLBACK).moves_tag and not Job(kind=Job.KIND_SCAN).moves_tag


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def queue_down(settings):
    """A broker address nothing listens on: the queue is really unreachable."""
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    queue.queue_forget()
    yield
    queue.queue_forget()


@pytest.mark.django_db
def test_an_htmx_partial_of_a_queued_job_says_the_queue_is_down(client, registry, queue_down):
    client.force_login(User.objects.create_superuser("ada"))
    job = Job.objects.create(kind=Job.KIND_SCAN, registry=registry, target=registry.name)
    partial = client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and BANNER in partial.content.decode()
    assert partial.content.decode().count(BANNER) == 1
    page = client.get(f"/jobs/{job.pk}/")  # the full page: once, at the top
    assert page.content.decode().count(BANNER) == 1


@pytest.mark.django_db
def test_pages_rendered_without_a_helper_show_the_queue_banner_too(client, registry, queue_down):
    """The rules pages used plain render(), and so never said the queue was down."""
    user = User.objects.create_user("pia")
    user.groups.add(Group.objects.get(name="pusher"))
    client.force_login(user)
    assert BANNER in client.get("/rules/").content.decode()
    assert Rule.objects.count() == 0


@pytest.mark.django_db
def test_no_banner_while_the_queue_answers(client, registry, redis_server):
    queue.queue_forget()
    client.force_login(User.objects.create_superuser("ada"))
    job = Job.objects.create(kind=Job.KIND_SCAN, registry=registry, target=registry.name)
    assert BANNER not in client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert BANNER not in client.get("/rules/").content.decode()
