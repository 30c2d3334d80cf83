"""Events recorded from scans of a real registry: platform_lost, required_missing, child_missing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from manifests.models import Event, Registry, Repository, Tag
from manifests.scan.repository import repository_scan
from manifests.services.events import event_record
from registry.images import attested_index_push, image_push, index_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


def _scan(running, registry: Registry, name: str, capture, **kwargs) -> dict:
    """A repository scan whose on-commit callbacks (tags_moved) run, as they do on a worker."""
    with running.client() as client, capture(execute=True):
        return repository_scan(client=client, registry=registry, name=name, **kwargs)


@pytest.fixture
def two_platform_list(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        images = [image_push(client, repository="team/app", tag=None, platform=p) for p in (AMD64, ARM64)]
        index = index_push(client, repository="team/app", tag="v1", children=[i.descriptor() for i in images])
    registry = Registry.objects.create(name="drift", url=running.url, insecure=True)
    return running, registry, index, images


def test_a_tag_moved_to_an_amd64_only_image_records_platform_lost_naming_arm64(
        two_platform_list, django_capture_on_commit_callbacks):
    running, registry, index, _ = two_platform_list
    _scan(running, registry, "team/app", django_capture_on_commit_callbacks)
    assert not Event.objects.exists()  # a new tag with every required platform: nothing to say
    with running.client() as client:
        amd64_only = image_push(client, repository="team/app", tag="v1", platform=AMD64, content="rebuilt")
    _scan(running, registry, "team/app", django_capture_on_commit_callbacks)
    event = Event.objects.get()
    assert event.kind == "platform_lost"
    assert event.platforms == ["linux/arm64"]
    assert (event.old_digest, event.new_digest) == (index.digest, amd64_only.digest)
    assert (event.registry, event.repository, event.tag) == (registry, "team/app", "v1")


def test_a_move_that_keeps_every_platform_records_nothing(two_platform_list, django_capture_on_commit_callbacks):
    running, registry, _, images = two_platform_list
    _scan(running, registry, "team/app", django_capture_on_commit_callbacks)
    with running.client() as client:
        index_push(client, repository="team/app", tag="v1", children=[i.descriptor() for i in reversed(images)])
    _scan(running, registry, "team/app", django_capture_on_commit_callbacks)
    assert Tag.objects.get(name="v1").digest != ""
    assert not Event.objects.exists()


def test_a_new_tag_lacking_a_required_platform_records_required_missing(
        fresh_registry, db, django_capture_on_commit_callbacks):
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository="team/tool", tag="1.0", platform=AMD64)
    registry = Registry.objects.create(name="req", url=running.url, insecure=True,
                                       required_platforms="linux/amd64,linux/arm64")
    _scan(running, registry, "team/tool", django_capture_on_commit_callbacks)
    # The first scan learns the inventory: what it lacks is on the coverage page, not an event per tag.
    assert not Event.objects.exists()
    Registry.objects.filter(pk=registry.pk).update(last_scan_at=timezone.now())
    with running.client() as client:
        image_push(client, repository="team/tool", tag="1.1", platform=AMD64, content="1.1")
    _scan(running, registry, "team/tool", django_capture_on_commit_callbacks)
    event = Event.objects.get()
    assert (event.kind, event.tag, event.platforms) == ("required_missing", "1.1", ["linux/arm64"])
    _scan(running, registry, "team/tool", django_capture_on_commit_callbacks)
    assert Event.objects.count() == 1  # an unchanged tag is not new again


def test_checking_children_records_child_missing_once(fresh_registry, db, django_capture_on_commit_callbacks):
    running = fresh_registry("anonymous")
    with running.client() as client:
        index, images, _ = attested_index_push(client, repository="clean/up", tag="v1", platforms=[AMD64, ARM64])
    registry = Registry.objects.create(name="gone", url=running.url, insecure=True)
    _scan(running, registry, "clean/up", django_capture_on_commit_callbacks)
    with running.client() as client:
        client.request("DELETE", f"/v2/clean/up/manifests/{images[1].digest}", op="DELETE manifest", ok=(202,))
    _scan(running, registry, "clean/up", django_capture_on_commit_callbacks, verify_children=True)
    event = Event.objects.get()
    assert (event.kind, event.tag, event.platforms) == ("child_missing", "v1", ["linux/arm64"])
    assert images[1].digest in event.detail and event.new_digest == index.digest
    _scan(running, registry, "clean/up", django_capture_on_commit_callbacks, verify_children=True)
    assert Event.objects.count() == 1  # still gone: told once


@pytest.fixture
def viewer_client(client, db):
    user = User.objects.create_user("vera")
    user.groups.add(Group.objects.get(name="viewer"))
    client.force_login(user)
    return client


def test_the_events_page_filters_by_kind_registry_and_repository_and_escapes(viewer_client):
    one = Registry.objects.create(name="one", url="http://127.0.0.1:9")
    two = Registry.objects.create(name="two", url="http://127.0.0.1:9")
    event_record(kind="platform_lost", registry=one, repository="team/app", tag="v1", platforms=["linux/arm64"],
                 detail="<script>alert(1)</script>")
    event_record(kind="required_missing", registry=one, repository="other/lib", tag="v2", platforms=["linux/arm64"])
    event_record(kind="child_missing", registry=two, repository="team/app", tag="v3")
    page = viewer_client.get("/events/").content.decode()
    assert page.count('<tr class="event ') == 3
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert viewer_client.get("/events/?kind=required_missing").content.decode().count('<tr class="event ') == 1
    assert viewer_client.get("/events/?registry=two").content.decode().count('<tr class="event ') == 1
    by_repo = viewer_client.get("/events/?repository=team").content.decode()
    assert by_repo.count('<tr class="event ') == 2 and "other/lib" not in by_repo
    assert 'href="/events/"' in page  # linked in the navigation


def test_a_tags_page_shows_its_events(viewer_client):
    registry = Registry.objects.create(name="one", url="http://127.0.0.1:9")
    repository = Repository.objects.create(registry=registry, name="team/app")
    Tag.objects.create(repository=repository, name="v1", digest="sha256:" + "a" * 64)
    Tag.objects.create(repository=repository, name="v2", digest="sha256:" + "b" * 64)
    event_record(kind="platform_lost", registry=registry, repository="team/app", tag="v1",
                 platforms=["linux/arm64"], detail="lost <b>arm64</b>")
    page = viewer_client.get("/registries/one/r/team/app/t/v1").content.decode()
    assert "Platform lost" in page and "linux/arm64" in page and "lost &lt;b&gt;arm64&lt;/b&gt;" in page
    other = viewer_client.get("/registries/one/r/team/app/t/v2").content.decode()
    assert "Platform lost" not in other


def _age_checks(repository_name: str, days: int = 2) -> None:
    """As if the lists' children were last checked `days` ago (the while is CHILDREN_CHECK_SECONDS, a day)."""
    import datetime

    from django.utils import timezone

    from manifests.models import ListCheck

    ListCheck.objects.filter(repository__name=repository_name).update(
        checked_at=timezone.now() - datetime.timedelta(days=days))


def test_a_registry_rescan_checks_children_only_of_lists_not_checked_for_a_while(
        fresh_registry, db, django_capture_on_commit_callbacks):
    running = fresh_registry("anonymous")
    with running.client() as client:
        index, images, attestations = attested_index_push(client, repository="clean/up", tag="v1",
                                                          platforms=[AMD64, ARM64])
        index_push(client, repository="clean/up", tag="v1-again", children=[i.descriptor() for i in images])
    registry = Registry.objects.create(name="gone", url=running.url, insecure=True)
    _scan(running, registry, "clean/up", django_capture_on_commit_callbacks)
    with running.client() as client:
        client.request("DELETE", f"/v2/clean/up/manifests/{images[1].digest}", op="DELETE manifest", ok=(202,))
        client.counters.clear()
        # Checked a moment ago (when first seen): a re-scan stays at the floor, one HEAD per tag.
        with django_capture_on_commit_callbacks(execute=True):
            counts = repository_scan(client=client, registry=registry, name="clean/up")
        assert dict(client.counters) == {"GET tags": 1, "HEAD manifest": 2}
        assert "children_checked" not in counts and not Event.objects.exists()

        _age_checks("clean/up")
        client.counters.clear()
        with django_capture_on_commit_callbacks(execute=True):
            counts = repository_scan(client=client, registry=registry, name="clean/up")
        # One HEAD per distinct child of both lists (2 images + 2 attestations), none twice.
        assert counts["children_checked"] == 4 and counts["children_missing"] == 1
        assert dict(client.counters) == {"GET tags": 1, "HEAD manifest": 2 + 4}
    assert sorted(Event.objects.values_list("kind", "tag", "platforms")) == [
        ("child_missing", "v1", ["linux/arm64"]), ("child_missing", "v1-again", ["linux/arm64"])]
    assert Tag.objects.get(name="v1").missing == [images[1].digest]
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="clean/up")
        assert dict(client.counters) == {"GET tags": 1, "HEAD manifest": 2}  # checked now: the floor again


def test_lists_due_for_a_check_are_bounded_per_scan(fresh_registry, db, settings):
    settings.CHILDREN_CHECK_LISTS = 1
    running = fresh_registry("anonymous")
    with running.client() as client:
        images = [image_push(client, repository="many/lists", tag=None, platform=p) for p in (AMD64, ARM64)]
        index_push(client, repository="many/lists", tag="a", children=[images[0].descriptor()])
        index_push(client, repository="many/lists", tag="b", children=[images[1].descriptor()])
    registry = Registry.objects.create(name="bound", url=running.url, insecure=True)
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="many/lists")
        _age_checks("many/lists")
        first = repository_scan(client=client, registry=registry, name="many/lists")
        second = repository_scan(client=client, registry=registry, name="many/lists")
        third = repository_scan(client=client, registry=registry, name="many/lists")
    assert (first["children_checked"], second["children_checked"]) == (1, 1)  # the oldest list first, then the other
    assert "children_checked" not in third


def test_the_api_lists_events_with_the_notification_fields(viewer_client):
    registry = Registry.objects.create(name="one", url="http://127.0.0.1:9")
    event_record(kind="platform_lost", registry=registry, repository="team/app", tag="v1", platforms=["linux/arm64"],
                 old_digest="sha256:" + "a" * 64, new_digest="sha256:" + "b" * 64)
    event_record(kind="child_missing", registry=registry, repository="team/lib", tag="v2")
    body = viewer_client.get("/api/v1/events?kind=platform_lost").json()
    assert [(e["event"], e["repository"], e["tag"], e["platforms"]) for e in body["events"]] == [
        ("platform_lost", "team/app", "v1", ["linux/arm64"])]
    assert body["events"][0]["url"].endswith("/registries/one/r/team/app/t/v1")
    assert len(viewer_client.get("/api/v1/events?registry=one").json()["events"]) == 2
    assert viewer_client.get("/api/v1/events?since=nonsense").status_code == 400
