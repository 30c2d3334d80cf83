"""Every page of the dashboard, as a user reaches it with the demo registry scanned.

Shared by the accessibility and layout tests and by `make screenshots`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    name: str
    path: str
    status: int = 200


def demo_pages() -> list[PageSpec]:
    """The pages, with the digests of the demo inventory filled in (call inside a test, after the scan)."""
    from manifests.models import Job, Registry, Rule, RuleSource, Tag

    webapp = Tag.objects.select_related("manifest").get(repository__name="demo/webapp", name="1.4")
    child = webapp.manifest.children.filter(is_attestation=False).order_by("position").first()
    job = Job.objects.order_by("pk").first()
    rule, made = Rule.objects.get_or_create(name="seed", defaults={
        "registry": Registry.objects.get(name="demo"), "target": "username/test:{tag}", "automatic": False})
    if made:
        RuleSource.objects.create(rule=rule, position=0, repository="username/x8664-test")
        RuleSource.objects.create(rule=rule, position=1, repository="username/arm64v8-test")
    return [
        PageSpec("registries", "/"),
        PageSpec("repositories", "/registries/demo/"),
        PageSpec("tags", "/registries/demo/r/demo/webapp/"),
        PageSpec("tag-list", "/registries/demo/r/demo/webapp/t/1.4"),
        PageSpec("tag-windows", "/registries/demo/r/demo/windows-app/t/latest"),
        PageSpec("manifest-list", f"/registries/demo/r/demo/webapp/m/{webapp.digest}"),
        PageSpec("manifest-image", f"/registries/demo/r/demo/webapp/m/{child.digest}"),
        PageSpec("coverage", "/coverage"),
        PageSpec("coverage-all", "/coverage?registry=%2A"),
        PageSpec("coverage-error", "/coverage?require=linux&lacking=linux%2Farm64"),
        PageSpec("coverage-newest", "/coverage?registry=%2A&newest=3"),
        PageSpec("coverage-unsigned", "/coverage?unsigned=1"),
        PageSpec("coverage-history", "/coverage/history?registry=demo"),
        PageSpec("builder", "/build/?registry=demo&target=demo/webapp:1.4"),
        PageSpec("builder-new", "/build/"),
        PageSpec("jobs", "/jobs/"),
        PageSpec("job", f"/jobs/{job.pk}/"),
        PageSpec("events", "/events/"),
        PageSpec("channels", "/channels/"),
        PageSpec("search", "/search?q=webapp"),
        PageSpec("search-digest", f"/search?q={child.digest[:19]}"),
        PageSpec("rules", "/rules/"),
        PageSpec("rule-new", "/rules/new"),
        PageSpec("rule", f"/rules/{rule.pk}/"),
        PageSpec("promote", "/promote/"),
        PageSpec("registry-new", "/registries/new"),
        PageSpec("registry-edit", "/registries/demo/edit"),
        PageSpec("not-found", "/registries/nowhere/", status=404),
    ]
