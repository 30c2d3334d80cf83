"""A rule's index annotations from the sources' image labels: {label:NAME} and {sourceN.label:NAME}."""

from __future__ import annotations

import json

import pytest

from manifests.forms.rules import RuleForm, rule_form_data
from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry
from manifests.services import rules
from registry.images import image_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
X86 = "username/x8664-test"
ARM = "username/arm64v8-test"
REVISION = "org.opencontainers.image.revision"
ANNOTATIONS = {REVISION: "{label:org.opencontainers.image.revision}",
               "org.opencontainers.image.version": "{tag}",
               "com.example.arm-revision": "{source2.label:org.opencontainers.image.revision}"}


def _form(registry: Registry, annotations: dict[str, str]) -> RuleForm:
    data, problems = rule_form_data({"name": "labels", "registry": registry.name, "target": "username/test:{tag}",
                                     "sources": [{"repository": X86}, {"repository": ARM}],
                                     "annotations": annotations, "format": "oci", "automatic": False})
    assert not problems
    return RuleForm(data)


@pytest.mark.django_db(transaction=True)
def test_index_annotations_take_the_sources_labels_and_a_missing_label_stops_that_tag(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository=X86, tag="1.0.0", platform=AMD64, labels={REVISION: "abc123"})
        image_push(client, repository=ARM, tag="1.0.0", platform=ARM64, labels={REVISION: "def456"})
        image_push(client, repository=X86, tag="2.0.0", platform=AMD64)  # built without labels
        image_push(client, repository=ARM, tag="2.0.0", platform=ARM64)
    registry = Registry.objects.create(name="labels", url=running.url, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="labels", params={}).pk)
    form = _form(registry, ANNOTATIONS)
    assert form.is_valid(), form.errors
    rule = rules.rule_load(rule_id=form.save().pk)

    rows = {row.tag: row for row in rules.rule_dry_run(rule=rule).rows}
    assert rows["1.0.0"].status == "new"
    assert rows["2.0.0"].status == "invalid"
    # One message per annotation (in the order the database gives the rule's annotations back).
    assert set(rows["2.0.0"].error.split("; ")) == {
        f"annotation {REVISION}: no source image carries the label {REVISION}",
        f"annotation com.example.arm-revision: source 2's image does not carry the label {REVISION}"}

    job = job_create(kind=Job.KIND_RULE_APPLY, registry=registry, target=rule.target, params={"rule": rule.pk})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.result["tags"]["1.0.0"]["status"] == "pushed", job.result
    assert job.result["tags"]["2.0.0"]["status"] == "failed"
    with running.client() as client:
        pushed = json.loads(client.get_manifest("username/test", "1.0.0").raw)
    assert pushed["annotations"] == {REVISION: "abc123", "org.opencontainers.image.version": "1.0.0",
                                     "com.example.arm-revision": "def456"}


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "message"), [
    ("{label:}", "{label:}: write a label as {label:NAME} or {sourceN.label:NAME}"),
    ("{source3.label:a.b}", "{source3.label:a.b}: the rule has 2 source(s)"),
    ("{source1.label:}", "{source1.label:}: write a label as {label:NAME} or {sourceN.label:NAME}"),
])
def test_a_label_field_written_wrongly_is_refused_next_to_the_annotations(value, message):
    registry = Registry.objects.create(name="r", url="http://127.0.0.1:1", insecure=True)
    form = _form(registry, {"a": value})
    assert not form.is_valid()
    assert any(error.startswith(f"a: {message}") for error in form.errors["annotations"]), form.errors
