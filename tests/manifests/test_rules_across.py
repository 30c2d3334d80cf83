"""A rule whose sources live in two registries: the other registry's blobs are streamed into the target."""

from __future__ import annotations

import json

import pytest

from manifests.forms.rules import RuleForm, rule_form_data, rule_to_dict
from manifests.jobs import job_create, job_run
from manifests.models import Job, Repository
from manifests.services import rules
from manifests.signals import TagMove
from registry.images import image_push
from registry.platform import Platform
from tests.manifests.across import registry_scanned


@pytest.mark.django_db(transaction=True)
def test_a_source_in_another_registry_is_streamed_into_the_target(fresh_registry, skopeo, tmp_path):
    main, lab = fresh_registry("anonymous"), fresh_registry("basic")
    with main.client() as client:
        image_push(client, repository="username/x8664-test", tag="5.0", platform=Platform("linux", "amd64"))
    with lab.client() as client:
        image_push(client, repository="username/arm64v8-test", tag="5.0", platform=Platform("linux", "arm64", "v8"))
    registry, other = registry_scanned(main, "main"), registry_scanned(lab, "lab")
    data, problems = rule_form_data({
        "name": "across", "registry": "main", "target": "username/test:{tag}",
        "sources": [{"repository": "username/x8664-test"},
                    {"repository": "username/arm64v8-test", "registry": "lab"}]})
    form = RuleForm(data)
    assert not problems and form.is_valid(), form.errors
    rule = rules.rule_load(rule_id=form.save().pk)
    assert rule_to_dict(rule)["sources"][1] == {"repository": "username/arm64v8-test", "registry": "lab"}
    assert [r.status for r in rules.rule_dry_run(rule=rule).rows] == ["new"]

    job = job_create(kind=Job.KIND_RULE_APPLY, registry=registry, target=rule.target, params={"rule": rule.pk})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.result["tags"]["5.0"]["status"] == "pushed", job.result
    assert job.result["transfer"]["blobs_streamed"] == 2 and job.result["transfer"]["bytes_moved"] > 0
    assert "bytes_per_second" in job.result["transfer"]
    ref = f"docker://{main.host}/username/test:5.0"
    listing = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout)
    assert {m["platform"]["architecture"] for m in listing["manifests"]} == {"amd64", "arm64"}
    skopeo("copy", "--src-tls-verify=false", "--override-os", "linux", "--override-arch", "arm64",
           "--override-variant", "v8", ref, f"dir:{tmp_path / 'arm'}")

    # A push into the other registry re-assembles the tag too.
    moved = rules.rules_for_moves(repository=Repository.objects.get(registry=other, name="username/arm64v8-test"),
                                  moves=[TagMove("5.1", "", "sha256:x")])
    assert moved == {rule.pk: ["5.1"]}
