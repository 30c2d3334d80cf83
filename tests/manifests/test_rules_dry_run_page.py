"""A rule's page shows its dry run a page of tags at a time, with counts and "apply to all" over every tag."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User

from manifests.models import Job, Manifest, Registry, Repository, Rule, RuleSource, Tag

IMAGE = "application/vnd.oci.image.manifest.v1+json"


def _rule_page(tags: int, *, taken: int = 0) -> str:
    """A rule over `tags` single-platform images in the inventory; the first `taken` targets already hold
    something else (conflicts, the rule not owning them)."""
    registry = Registry.objects.create(name="big", url="https://registry.example.invalid")
    config = "sha256:" + "c" * 64
    raw = json.dumps({"schemaVersion": 2, "mediaType": IMAGE, "layers": [], "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2}}).encode()
    image = Manifest.objects.create(digest="sha256:" + "a" * 64, media_type=IMAGE, kind="image", raw=raw,
                                    config_digest=config, os="linux", architecture="amd64", platform="linux/amd64")
    source = Repository.objects.create(registry=registry, name="team/src")
    target = Repository.objects.create(registry=registry, name="team/merged")
    Tag.objects.bulk_create([Tag(repository=source, name=f"1.{t}", digest=image.digest, kind="image",
                                 media_type=IMAGE, manifest=image) for t in range(tags)])
    Tag.objects.bulk_create([Tag(repository=target, name=f"1.{t}", digest="sha256:" + "e" * 64, kind="image",
                                 media_type=IMAGE) for t in range(taken)])
    rule = Rule.objects.create(name="every-tag", registry=registry, target="team/merged:{tag}", automatic=False)
    RuleSource.objects.create(rule=rule, position=0, repository="team/src", tag="{tag}")
    return f"/rules/{rule.pk}/"


@pytest.mark.django_db
def test_the_dry_run_table_shows_100_rows_a_page_with_counts_over_every_tag(client, redis_server):
    client.force_login(User.objects.create_superuser("root"))
    path = _rule_page(250)
    page = client.get(path).content.decode()
    statuses = re.findall(r'<tr data-tag="[^"]+" data-status="([^"]+)"', page)
    assert len(statuses) == 100
    total = re.search(r'id="dry-run-counts".*?</p>', page, re.S)[0]
    assert sum(int(n) for n in re.findall(r">(\d+) \w+</a>", total)) == 250
    assert "page 1 of 3 (250)" in page and 'id="apply-all"' in page
    last = client.get(f"{path}?page=3").content.decode()
    assert len(re.findall(r"<tr data-tag=", last)) == 50
    shown = {tag for p in (1, 2, 3) for tag in re.findall(
        r'<tr data-tag="([^"]+)"', client.get(f"{path}?page={p}").content.decode())}
    assert len(shown) == 250


@pytest.mark.django_db
def test_the_dry_run_table_filters_by_status_and_says_when_none_is(client, redis_server):
    client.force_login(User.objects.create_superuser("root"))
    path = _rule_page(30, taken=5)
    every = client.get(path).content.decode()
    statuses = re.findall(r'<tr data-tag="[^"]+" data-status="([^"]+)"', every)
    assert 'id="apply-all"' not in every  # everything is on the one page: its boxes do
    assert statuses.count("conflict") == 5 and statuses.count("new") == 25
    status = "conflict"
    only = client.get(f"{path}?status={status}").content.decode()
    assert set(re.findall(r'data-status="([^"]+)"', only)) == {status}
    assert len(re.findall(r"<tr data-tag=", only)) == statuses.count(status)
    assert "No tag is changed." in client.get(f"{path}?status=changed").content.decode()


@pytest.mark.django_db
def test_apply_to_every_tag_queues_the_rule_for_all_of_them(client, redis_server):
    client.force_login(User.objects.create_superuser("root"))
    path = _rule_page(4)
    response = client.post(f"{path}apply", {"all": "1"})
    job = Job.objects.get(kind="rule_apply")
    assert response["Location"] == f"/jobs/{job.pk}/" and job.params["tags"] is None


@pytest.mark.django_db
def test_the_dry_run_reads_stored_manifests_by_two_indexed_lookups_not_an_or(client, redis_server):
    """With `pk IN (...) OR digest IN (...)` PostgreSQL scanned every stored manifest on each dry run."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from manifests.services import rules, rules_plans

    _rule_page(3)
    rules_plans.rule_plans_forget()  # the plans made before would need no manifest
    with CaptureQueriesContext(connection) as captured:
        dry = rules.rule_dry_run(rule=rules.rule_load(rule_id=Rule.objects.get().pk))
    assert dry.counts() == {"new": 3}
    reads = [q["sql"] for q in captured.captured_queries if 'FROM "manifests_manifest"' in q["sql"]
             and '"raw"' in q["sql"]]
    assert len(reads) == 1 and "UNION ALL" in reads[0] and " OR " not in reads[0], reads


@pytest.mark.django_db
def test_a_rules_page_makes_its_plans_once_and_shows_the_same_page_again(client, redis_server):
    """The second view of the same inventory reads no stored manifest (its plans are made) and shows the
    same bytes as the first."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(User.objects.create_superuser("root"))
    path = _rule_page(120, taken=3)
    first = client.get(path).content.decode()
    with CaptureQueriesContext(connection) as captured:
        again = client.get(path).content.decode()
    assert not [q["sql"] for q in captured.captured_queries if 'FROM "manifests_manifest"' in q["sql"]]
    strip = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"|"X-CSRFToken": "[^"]+"')
    assert strip.sub("", again) == strip.sub("", first)
    assert again.count('data-status="new"') == 97 and again.count('data-status="conflict"') == 3


@pytest.mark.django_db
def test_a_plan_is_made_again_once_a_scan_has_stored_what_it_lacked(client, redis_server):
    """A source list whose child was not stored yet cannot be assembled; once a scan stores the child (and
    writes the tag's scan time, as every scan does) the page assembles it, though no digest changed."""
    from django.utils import timezone

    client.force_login(User.objects.create_superuser("root"))
    registry = Registry.objects.create(name="big", url="https://registry.example.invalid")
    config = "sha256:" + "c" * 64
    image_raw = json.dumps({"schemaVersion": 2, "mediaType": IMAGE, "layers": [], "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2}}).encode()
    child = "sha256:" + "a" * 64
    index_type = "application/vnd.oci.image.index.v1+json"
    index_raw = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": [{
        "mediaType": IMAGE, "digest": child, "size": len(image_raw),
        "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
    index = Manifest.objects.create(digest="sha256:" + "b" * 64, media_type=index_type, kind="index", raw=index_raw)
    index.children.create(position=0, digest=child, media_type=IMAGE, size=len(image_raw), os="linux",
                          architecture="arm64", platform="linux/arm64")
    source = Repository.objects.create(registry=registry, name="team/src")
    tag = Tag.objects.create(repository=source, name="1.0", digest=index.digest, kind="index",
                             media_type=index_type, manifest=index, scanned_at=timezone.now())
    rule = Rule.objects.create(name="every-tag", registry=registry, target="team/merged:{tag}", automatic=False)
    RuleSource.objects.create(rule=rule, position=0, repository="team/src", tag="{tag}")
    assert re.findall(r'data-status="([^"]+)"', client.get(f"/rules/{rule.pk}/").content.decode()) == ["invalid"]
    Manifest.objects.create(digest=child, media_type=IMAGE, kind="image", raw=image_raw, config_digest=config,
                            os="linux", architecture="arm64", platform="linux/arm64")
    Tag.objects.filter(pk=tag.pk).update(scanned_at=timezone.now())
    assert re.findall(r'data-status="([^"]+)"', client.get(f"/rules/{rule.pk}/").content.decode()) == ["new"]
