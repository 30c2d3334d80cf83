"""Rules kept as YAML: `manage.py rules_apply`, and the export of a rule, round trip."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import CommandError, call_command

from manifests.forms.rules import rule_to_dict, rule_yaml
from manifests.models import Registry, Rule
from manifests.services import rules

YAML = """
rules:
  - name: seed
    registry: local
    target: username/test:{tag}
    sources:
      - repository: username/x8664-test
      - repository: username/arm64v8-test
        platform: linux/arm64/v8
        tag: "{tag}-arm64"
    tags: {semver: ">=1.2 <2"}
    require: [linux/amd64]
    format: oci
    annotations:
      org.opencontainers.image.version: "{version}"
    also_tag: [latest]
    owns_target: false
    automatic: true
"""


def _run(*args) -> str:
    out = io.StringIO()
    call_command("rules_apply", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_rules_apply_creates_the_rules_and_the_export_reads_back_the_same(tmp_path):
    Registry.objects.create(name="local", url="http://127.0.0.1:1", insecure=True)
    path = tmp_path / "rules.yaml"
    path.write_text(YAML)
    assert "seed: would be created; no tags" in _run(str(path), "--dry-run")
    assert not Rule.objects.exists()
    assert "seed: created" in _run(str(path), "--no-apply")
    rule = rules.rule_load(rule_id=Rule.objects.get().pk)
    assert rule_to_dict(rule) == {**yaml.safe_load(YAML)["rules"][0],
                                  "sources": [{"repository": "username/x8664-test"},
                                              {"repository": "username/arm64v8-test", "tag": "{tag}-arm64",
                                               "platform": "linux/arm64"}]}
    exported = tmp_path / "exported.yaml"
    exported.write_text(rule_yaml(rule))
    assert "seed: unchanged" in _run(str(exported), "--no-apply")
    assert yaml.safe_load(rule_yaml(rules.rule_load(rule_id=rule.pk))) == yaml.safe_load(exported.read_text())


@pytest.mark.django_db
def test_a_bad_file_changes_nothing_and_names_each_problem(tmp_path):
    Registry.objects.create(name="local", url="http://127.0.0.1:1", insecure=True)
    path = tmp_path / "rules.yaml"
    path.write_text(YAML + "  - name: two\n    registry: local\n    target: nope\n    sources: []\n")
    with pytest.raises(CommandError) as raised:
        _run(str(path), "--no-apply")
    assert "rule two: target:" in str(raised.value) and "rule two: sources:" in str(raised.value)
    assert not Rule.objects.exists()
