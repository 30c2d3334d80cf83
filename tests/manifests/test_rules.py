"""Assembly rules: selection, the dry run from the inventory, and the apply job against a real registry."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from manifests.forms.rules import RuleForm, rule_form_data
from manifests.jobs import job_create, job_run
from manifests.models import Event, Job, PushRecord, Registry, Rule, RuleTagState, Tag
from manifests.services import rules
from manifests.services.rules_select import (
    SelectionInvalid,
    regex_compile,
    selection_compile,
    semver_newest,
)
from registry.images import attested_index_push, image_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
X86 = "username/x8664-test"
ARM = "username/arm64v8-test"


def _registry(running, name: str = "rules") -> Registry:
    return Registry.objects.create(name=name, url=running.url, insecure=True)


def _scan(registry: Registry, repository: str = "") -> None:
    job = job_create(kind="scan", registry=registry, target=registry.name,
                     params={"repository": repository} if repository else {})
    job_run(inline=True, job_id=job.pk)


def _rule(registry: Registry, **fields) -> Rule:
    # Not automatic unless said: the scans of these tests would queue jobs for a worker otherwise.
    body = {"name": "seed", "registry": registry.name, "target": "username/test:{tag}",
            "sources": [{"repository": X86}, {"repository": ARM}], "automatic": False, **fields}
    data, problems = rule_form_data(body)
    form = RuleForm(data)
    assert not problems and form.is_valid(), (problems, form.errors)
    return form.save()


def _apply(rule: Rule, tags: list[str] | None = None) -> Job:
    """The job's runner, in this process (the worker calls the same function)."""
    job = job_create(kind=Job.KIND_RULE_APPLY, registry=rule.registry, target=rule.target,
                     params={"rule": rule.pk, "tags": tags})
    job_run(job_id=job.pk)
    return Job.objects.get(pk=job.pk)


def _statuses(rule: Rule) -> dict[str, str]:
    rule = rules.rule_load(rule_id=rule.pk)
    return {row.tag: row.status for row in rules.rule_dry_run(rule=rule).rows}


# -- selection ------------------------------------------------------------------


def test_globs_regexes_and_semver_ranges_select_tags():
    tags = ["1.0.0", "v1.2.0", "v1.2.7", "1.9.9", "2.0.0", "2.0.0-rc.1", "latest", "v1.3.0-beta", "1.2"]
    pick = lambda mode, pattern: [t for t in tags if selection_compile(mode=mode, pattern=pattern)(t)]  # noqa: E731
    assert pick("glob", "v*") == ["v1.2.0", "v1.2.7", "v1.3.0-beta"]
    assert pick("regex", r"v?1\.2(\.\d+)?") == ["v1.2.0", "v1.2.7", "1.2"]
    assert pick("semver", ">=1.2 <2") == ["v1.2.0", "v1.2.7", "1.9.9"]
    assert pick("semver", "^1.2.3") == ["v1.2.7", "1.9.9"]
    assert pick("semver", "~1.2") == ["v1.2.0", "v1.2.7"]
    assert pick("semver", "1.0.0 || >=2") == ["1.0.0", "2.0.0"]
    assert pick("semver", ">=2.0.0-rc.0") == ["2.0.0", "2.0.0-rc.1"]
    assert pick("all", "") == tags
    assert semver_newest(tags) == "2.0.0"


@pytest.mark.parametrize("pattern", ["(a+)+b", "(a|aa)*b", r"(\w+)\1", "(?=a)a", ".*.*.*x", "a" * 201])
def test_a_regex_with_an_unbounded_worst_case_is_refused(pattern):
    with pytest.raises(SelectionInvalid):
        regex_compile(pattern)


def test_a_bad_semver_range_is_refused_with_a_message():
    with pytest.raises(SelectionInvalid, match="not a version"):
        selection_compile(mode="semver", pattern=">=banana")


# -- the form -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_form_reports_each_problem_at_its_field():
    Registry.objects.create(name="r", url="http://127.0.0.1:1", insecure=True)
    data, problems = rule_form_data({
        "name": "bad name", "registry": "r", "target": "username/test:latest",
        "sources": [{"repository": "Bad//Repo"}, {"repository": "ok/one", "tag": "fixed", "platform": "linux"}],
        "tags": {"regex": "(a+)+"}, "require": ["nope"], "format": "docker",
        "annotations": {"a": "{nosuch}"}})
    form = RuleForm(data)
    assert not form.is_valid()
    errors = form.errors
    assert set(errors) >= {"name", "target", "sources", "tags_pattern", "require", "annotations"}
    assert "{tag}" in errors["target"][0]
    assert any("source 1" in m for m in errors["sources"]) and any("source 2" in m for m in errors["sources"])


# -- dry run and apply against a registry -----------------------------------------


@pytest.fixture
def seeded(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        for tag in ("1.0.0", "2.0.0"):
            image_push(client, repository=X86, tag=tag, platform=AMD64)
            image_push(client, repository=ARM, tag=tag, platform=ARM64)
        image_push(client, repository=X86, tag="1.1.0", platform=AMD64)  # its arm64 build is late
        # Someone assembled 2.0.0 by hand, from other images.
        other = image_push(client, repository="username/test", tag="2.0.0", platform=AMD64, content="by hand")
    registry = _registry(running)
    _scan(registry)
    return running, registry, other


@pytest.mark.django_db(transaction=True)
def test_the_dry_run_says_new_incomplete_and_conflict_from_the_inventory_alone(seeded):
    running, registry, _ = seeded
    rule = _rule(registry)
    dry = rules.rule_dry_run(rule=rules.rule_load(rule_id=rule.pk))
    rows = {row.tag: row for row in dry.rows}
    assert {t: r.status for t, r in rows.items()} == {"1.0.0": "new", "1.1.0": "incomplete", "2.0.0": "conflict"}
    assert rows["1.1.0"].missing == [f"{ARM}:1.1.0"]
    assert {d["platform"]: d["status"] for d in rows["1.0.0"].diff} == {"linux/amd64": "added",
                                                                          "linux/arm64": "added"}
    assert rows["2.0.0"].current == Tag.objects.get(repository__name="username/test", name="2.0.0").digest


@pytest.mark.django_db(transaction=True)
def test_apply_pushes_new_tags_leaves_conflicts_and_records_history_as_the_rule(seeded, skopeo):
    running, registry, other = seeded
    rule = _rule(registry)
    job = _apply(rule)
    assert job.status == "succeeded", (job.error, job.result)
    result = job.result["tags"]
    assert result["1.0.0"]["status"] == "pushed"
    assert result["1.1.0"] == {"status": "incomplete", "missing": [f"{ARM}:1.1.0"], "digest": ""}
    assert result["2.0.0"]["status"] == "conflict"
    states = {s.tag: s for s in RuleTagState.objects.filter(rule=rule)}
    assert states["2.0.0"].status == "conflict" and "did not push" in states["2.0.0"].error
    conflict = Event.objects.get(kind=Event.RULE_CONFLICT)  # the watch's events and notifications hear of it
    assert (conflict.repository, conflict.tag, conflict.new_digest) == ("username/test", "2.0.0", other.digest)
    assert states["1.1.0"].status == "incomplete"
    record = PushRecord.objects.get(rule=rule)
    assert (record.tag, record.new_digest, record.job_id) == ("1.0.0", states["1.0.0"].digest, job.pk)
    # The hand-made list was left alone.
    with running.client() as client:
        assert client.head_manifest("username/test", "2.0.0").digest == other.digest
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{running.host}/username/test:1.0.0").stdout
    assert {m["platform"]["architecture"] for m in json.loads(raw)["manifests"]} == {"amd64", "arm64"}
    # The inventory knows the pushed list at once: the dry run now says unchanged.
    assert _statuses(rule)["1.0.0"] == "unchanged"


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_tag_costs_one_head_and_nothing_else(seeded):
    _, registry, _ = seeded
    rule = _rule(registry, tags="1.0.0")
    assert _apply(rule).result["tags"]["1.0.0"]["status"] == "pushed"
    again = _apply(rule)
    assert again.result["tags"]["1.0.0"]["status"] == "unchanged"
    assert again.result["requests"] == {"HEAD manifest": 1}
    assert PushRecord.objects.filter(rule=rule).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_moved_source_makes_the_tag_changed_and_another_writer_makes_it_a_conflict(seeded):
    running, registry, _ = seeded
    rule = _rule(registry, tags={"semver": "<2"})
    _apply(rule)
    with running.client() as client:
        image_push(client, repository=ARM, tag="1.0.0", platform=ARM64, content="rebuilt")
    _scan(registry, ARM)
    rule = rules.rule_load(rule_id=rule.pk)
    row = next(r for r in rules.rule_dry_run(rule=rule).rows if r.tag == "1.0.0")
    assert row.status == "changed"
    assert {d["platform"]: d["status"] for d in row.diff} == {"linux/amd64": "unchanged",
                                                              "linux/arm64": "changed"}
    assert _apply(rule).result["tags"]["1.0.0"]["status"] == "pushed"
    # Someone pushes over the rule's list: the rule stops there...
    with running.client() as client:
        image_push(client, repository="username/test", tag="1.0.0", platform=AMD64, content="hotfix")
        image_push(client, repository=ARM, tag="1.0.0", platform=ARM64, content="rebuilt again")
    _scan(registry)
    assert _statuses(rule)["1.0.0"] == "conflict"
    assert _apply(rule).result["tags"]["1.0.0"]["status"] == "conflict"
    # ...unless it owns its targets.
    Rule.objects.filter(pk=rule.pk).update(owns_target=True)
    assert _statuses(rule)["1.0.0"] == "changed"
    assert _apply(rule).result["tags"]["1.0.0"]["status"] == "pushed"


@pytest.mark.django_db(transaction=True)
def test_a_conflict_found_only_at_the_registry_is_reported(seeded):
    """The inventory is behind: the push's own check of the target finds someone else's list."""
    running, registry, _ = seeded
    rule = _rule(registry, tags="1.0.0")
    with running.client() as client:
        image_push(client, repository="username/test", tag="1.0.0", platform=AMD64, content="unscanned")
    assert _statuses(rule)["1.0.0"] == "new"
    job = _apply(rule)
    assert job.result["tags"]["1.0.0"]["status"] == "conflict"
    assert RuleTagState.objects.get(rule=rule, tag="1.0.0").status == "conflict"


@pytest.mark.django_db(transaction=True)
def test_required_platforms_make_the_rest_optional(seeded):
    _, registry, _ = seeded
    rule = _rule(registry, require=["linux/amd64"], tags={"semver": "~1"})
    rows = {row.tag: row for row in rules.rule_dry_run(rule=rules.rule_load(rule_id=rule.pk)).rows}
    assert rows["1.1.0"].status == "new" and rows["1.1.0"].missing == []
    assert [d["platform"] for d in rows["1.1.0"].diff] == ["linux/amd64"]
    strict = _rule(registry, name="strict", require=["linux/amd64", "linux/riscv64"], tags="1.0.0")
    rows = rules.rule_dry_run(rule=rules.rule_load(rule_id=strict.pk)).rows
    assert rows[0].status == "incomplete" and rows[0].missing == ["linux/riscv64"]


@pytest.mark.django_db(transaction=True)
def test_a_list_source_brings_its_platforms_and_attestations(fresh_registry, skopeo):
    running = fresh_registry("anonymous")
    with running.client() as client:
        attested_index_push(client, repository="team/app-build", tag="3.1.0", platforms=[AMD64, ARM64])
        image_push(client, repository="team/app-riscv", tag="3.1.0", platform=Platform("linux", "riscv64"),
                   oci=True)
    registry = _registry(running)
    _scan(registry)
    rule = _rule(registry, target="team/app:{tag}", sources=[{"repository": "team/app-build"},
                                                             {"repository": "team/app-riscv"}],
                 annotations={"org.opencontainers.image.version": "{version}"})
    job = _apply(rule)
    assert job.result["tags"]["3.1.0"]["status"] == "pushed", job.result
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{running.host}/team/app:3.1.0").stdout
    index = json.loads(raw)
    assert index["annotations"] == {"org.opencontainers.image.version": "3.1.0"}
    kinds = [m.get("annotations", {}).get("vnd.docker.reference.type", m["platform"]["architecture"])
             for m in index["manifests"]]
    assert kinds == ["amd64", "arm64", "riscv64", "attestation-manifest", "attestation-manifest"]


@pytest.mark.django_db(transaction=True)
def test_latest_follows_the_newest_semver_tag_the_rule_assembled(seeded):
    running, registry, _ = seeded
    rule = _rule(registry, also_tag=["latest"], tags={"semver": "<2"})
    job = _apply(rule)
    assert job.result["tags"]["latest"]["status"] == "pushed"
    assert job.result["tags"]["latest"]["follows"] == "1.0.0"
    with running.client() as client:
        assert client.head_manifest("username/test", "latest").digest == job.result["tags"]["1.0.0"]["digest"]
        image_push(client, repository=ARM, tag="1.1.0", platform=ARM64)
    _scan(registry, ARM)
    job = _apply(rules.rule_load(rule_id=rule.pk))
    assert job.result["tags"]["1.1.0"]["status"] == "pushed"
    assert job.result["tags"]["latest"]["follows"] == "1.1.0"
    with running.client() as client:
        assert client.head_manifest("username/test", "latest").digest == job.result["tags"]["1.1.0"]["digest"]
    assert PushRecord.objects.filter(rule=rule, tag="latest").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_failure_shows_on_the_rule_and_on_the_tag(seeded):
    running, registry, _ = seeded
    rule = _rule(registry, tags="1.0.0")
    running.stop()
    try:
        job = _apply(rule)
    finally:
        running.start()
    assert job.status == "failed"
    rule.refresh_from_db()
    assert "1.0.0" in rule.last_error
    state = RuleTagState.objects.get(rule=rule, tag="1.0.0")
    assert state.status == "failed" and "registry error" in state.error


# -- a thousand tags ---------------------------------------------------------------


def _clone_tags(registry: Registry, repository: str, source_tag: str, names: list[str]) -> None:
    """Give the inventory `names` as tags holding what `source_tag` holds, as a scan of a registry
    where they were all pushed would (the dry run reads only the inventory)."""
    from manifests.models import TagPlatform

    original = Tag.objects.get(repository__registry=registry, repository__name=repository, name=source_tag)
    rows = [original.platform_rows.get()]
    for name in names:
        tag = Tag.objects.create(repository=original.repository, name=name, digest=original.digest,
                                 media_type=original.media_type, kind=original.kind, manifest=original.manifest,
                                 platforms=original.platforms)
        TagPlatform.objects.create(tag=tag, platform=rows[0].platform, digest=rows[0].digest)


@pytest.mark.django_db(transaction=True)
def test_the_dry_run_of_a_thousand_tags_takes_a_fixed_number_of_queries(seeded):
    _, registry, _ = seeded
    rule = _rule(registry, annotations={"org.opencontainers.image.version": "{tag}"})
    counts = []
    for total in (10, 1000):
        names = [f"9.{i}.0" for i in range(len(Tag.objects.filter(repository__name=X86, name__startswith="9.")),
                                            total)]
        _clone_tags(registry, X86, "1.0.0", names)
        _clone_tags(registry, ARM, "1.0.0", names)
        rule = rules.rule_load(rule_id=rule.pk)
        began = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            dry = rules.rule_dry_run(rule=rule)
        print(f"dry run of {total + 1} tags: {time.perf_counter() - began:.3f}s, {len(queries)} queries")
        assert dry.counts()["new"] == total + 1
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 8


@pytest.mark.django_db(transaction=True)
def test_a_thousand_tags_apply_in_one_job_with_requests_at_the_floor(fresh_registry):
    """Per tag: one HEAD of the target tag and one list PUT; each child manifest and blob once."""
    running = fresh_registry("anonymous")
    total = 1000
    names = [f"1.{i}.0" for i in range(total)]
    with running.client() as client:
        for repository, platform in ((X86, AMD64), (ARM, ARM64)):
            image = image_push(client, repository=repository, tag=names[0], platform=platform)
            raw = client.get_manifest(repository, image.digest).raw
            for name in names[1:]:
                client.put_manifest(repository, name, raw, image.media_type)
    registry = _registry(running)
    _scan(registry)
    rule = _rule(registry, annotations={"org.opencontainers.image.version": "{tag}"})
    job = _apply(rule)
    assert job.status == "succeeded", job.error
    assert job.result["counts"] == {"pushed": total}
    # At the floor: per tag one HEAD of the target (the conflict check) and one list PUT; the two images
    # of two blobs (config, layer) mounted and put once for the thousand lists, with no HEAD before them
    # (a 201 answer proves what it made).
    assert job.result["requests"] == {"HEAD manifest": total, "PUT manifest": total + 2, "POST mount": 4}
    steps = [s for s in job.steps if s["event"] == "tag"]
    assert (steps[-1]["n"], steps[-1]["of"]) == (total, total)
    assert PushRecord.objects.filter(rule=rule).count() == total
    # Each push is proven by the answers the floor already gets, and recorded as read back.
    assert PushRecord.objects.filter(rule=rule, verified=True, verify_error="").count() == total
    again = _apply(rules.rule_load(rule_id=rule.pk))
    assert again.result["counts"] == {"unchanged": total}
    assert again.result["requests"] == {"HEAD manifest": total}


@pytest.mark.django_db
def test_moves_map_back_to_the_rules_and_tags_they_touch():
    from manifests.models import Repository
    from manifests.signals import TagMove

    registry = Registry.objects.create(name="r", url="http://127.0.0.1:1", insecure=True)
    other = Registry.objects.create(name="o", url="http://127.0.0.1:2", insecure=True)
    seed = _rule(registry, tags="v*", sources=[{"repository": X86}, {"repository": ARM, "tag": "{tag}-arm64"}],
                 also_tag=["latest"], automatic=True)
    _rule(registry, name="manual")
    _rule(other, name="elsewhere", automatic=True)
    arm = Repository.objects.create(registry=registry, name=ARM)
    moves = [TagMove("v1-arm64", "", "sha256:a"), TagMove("v2", "", "sha256:b"), TagMove("1.0-arm64", "", "x"),
             TagMove("latest-arm64", "", "y")]
    assert rules.rules_for_moves(repository=arm, moves=moves) == {seed.pk: ["v1"]}


@pytest.mark.django_db(transaction=True)
def test_a_push_by_the_rule_rolls_back_like_any_push_and_the_rule_then_leaves_the_tag_alone(seeded):
    from manifests.jobs import job_run

    running, registry, _ = seeded
    rule = _rule(registry, tags="1.0.0")
    first = _apply(rule).result["tags"]["1.0.0"]["digest"]
    with running.client() as client:
        image_push(client, repository=ARM, tag="1.0.0", platform=ARM64, content="rebuilt")
    _scan(registry, ARM)
    second = _apply(rules.rule_load(rule_id=rule.pk)).result["tags"]["1.0.0"]["digest"]
    record = PushRecord.objects.get(rule=rule, new_digest=first)
    job = job_create(kind=Job.KIND_ROLLBACK, registry=registry, target="username/test:1.0.0",
                     params={"record": record.pk})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    with running.client() as client:
        assert client.head_manifest("username/test", "1.0.0").digest == first != second
    # Someone chose the older list: the rule does not undo that; it reports a conflict.
    assert _statuses(rule)["1.0.0"] == "conflict"


@pytest.mark.django_db(transaction=True)
def test_a_target_deleted_after_a_conflict_is_assembled_again(seeded):
    running, registry, _ = seeded
    rule = _rule(registry, tags="1.0.0")
    _apply(rule)
    with running.client() as client:
        image_push(client, repository="username/test", tag="1.0.0", platform=AMD64, content="by hand")
    _scan(registry, "username/test")
    assert _apply(rule).result["tags"]["1.0.0"]["status"] == "conflict"
    Tag.objects.filter(repository__name="username/test", name="1.0.0").delete()  # as a scan after a delete
    with running.client() as client:
        digest = client.head_manifest("username/test", "1.0.0").digest
        client.request("DELETE", f"/v2/username/test/manifests/{digest}", op="DELETE manifest", ok=(202,)).close()
    assert _statuses(rule)["1.0.0"] == "new"
    assert _apply(rule).result["tags"]["1.0.0"]["status"] == "pushed"


@pytest.mark.django_db(transaction=True)
def test_moves_that_cannot_be_queued_say_so_on_the_rule(monkeypatch):
    """The broker refusing is a narrow error path: queue_available is made to answer no."""
    from manifests.models import Repository
    from manifests.services import queue
    from manifests.signals import TagMove

    registry = Registry.objects.create(name="r", url="http://127.0.0.1:1", insecure=True)
    rule = _rule(registry, automatic=True)
    monkeypatch.setattr(queue, "queue_available", lambda: False)
    rules.rules_on_tags_moved(Repository, repository=Repository.objects.create(registry=registry, name=ARM),
                              moves=[TagMove("3.0.0", "", "sha256:a")])
    rule.refresh_from_db()
    assert "3.0.0" in rule.last_error and "apply the rule" in rule.last_error
    assert not Job.objects.exists()
