"""What the hostile-registry tests check and record: the figures, the scans, the pages, the origins."""

from __future__ import annotations

import time
from dataclasses import asdict
from urllib.parse import quote

from manifests.models import Registry, Repository, Tag
from manifests.scan.repository import repository_scan
from manifests.services.registries import registry_client
from registry import RegistryClient
from registry.transport import READ_CHUNK
from tests.faults.hostile.content import MAX_STREAM_BYTES, PASSWORD, SCRIPT, USER, Good
from tests.faults.hostile.server import HostileRegistry

HOSTILE_MARKUP = (SCRIPT, "<img src=x")


# -- figures -------------------------------------------------------------------


def summary(cases: dict[str, dict]) -> dict:
    faults: dict[str, int] = {}
    for case in cases.values():
        for kind, count in case["faults"].items():
            faults[kind] = faults.get(kind, 0) + count
    streams = [record for case in cases.values() for record in case["streams"]]
    return {
        "cases_tried": len(cases),
        "oversize_bodies": {
            "refused": len(streams),
            "client_hung_up": sum(r["hung_up"] for r in streams),
            "most_bytes_the_client_read_of_one_body": max(
                (n for case in cases.values() for n in case["largest_bodies"].values()), default=0),
            "bytes_offered_by_the_endless_ones": MAX_STREAM_BYTES,
        },
        "faults_injected": sum(faults.values()),
        "fault_kinds": len(faults),
        "faults_by_kind": dict(sorted(faults.items())),
        "good_items_checked": sum(case["good_checked"] for case in cases.values()),
        "items_lost": sum(len(case["lost"]) for case in cases.values()),
        "cases": cases,
    }


def record(figures: dict, request, hostile: HostileRegistry, *, checked: list[Good], lost: list[str],
            client: RegistryClient | None = None) -> None:
    figures[request.node.name] = {"faults": dict(hostile.faults), "faults_injected": hostile.faults_sent,
                                  "good_checked": len(checked), "lost": lost,
                                  "largest_bodies": dict(client.largest_body) if client else {},
                                  "streams": [asdict(record) for record in hostile.streams]}


def read_at_most(client: RegistryClient, op: str, cap: int) -> int:
    """The most bytes the client itself read of one `op` body: the cap and one read chunk, at most.

    Counted by the client, not by the server: what the kernels buffer between them is never read."""
    largest = client.largest_body[op]
    assert largest <= cap + READ_CHUNK, (op, largest, cap)
    return largest


def hung_up(record, timeout: float = 5.0):
    """The stream record once its server thread has noticed the client hang up."""
    deadline = time.monotonic() + timeout
    while not record.hung_up and time.monotonic() < deadline:
        time.sleep(0.02)
    return record


# -- helpers -------------------------------------------------------------------


def registry_add(hostile: HostileRegistry, name: str = "hostile", *, auth: str = Registry.AUTH_ANONYMOUS) -> Registry:
    registry = Registry(name=name, url=hostile.url, insecure=True, auth=auth)
    if auth != Registry.AUTH_ANONYMOUS:
        registry.username = USER
        registry.set_secret(PASSWORD)
    registry.save()
    return registry


def scan_client(registry: Registry, repository: str, **client_options) -> tuple[dict, RegistryClient]:
    with registry_client(registry=registry, **client_options) as client:
        return repository_scan(client=client, registry=registry, name=repository), client


def scan(registry: Registry, repository: str, **client_options) -> dict:
    return scan_client(registry, repository, **client_options)[0]


def no_credentials_reached_the_other_origin(hostile: HostileRegistry) -> list:
    """What the second origin received: never an Authorization header, nor the password anywhere."""
    seen = hostile.seen_by("other")
    assert [s for s in seen if s.authorization] == [], seen
    assert not any(PASSWORD in value for s in seen for value in (*s.headers.values(), s.path, s.query)), seen
    return seen


def credentials_were_sent_to_the_registry(hostile: HostileRegistry, path_part: str) -> None:
    """The registry's own origin did get them: the case had credentials to leak."""
    assert any(path_part in s.path and s.authorization for s in hostile.seen_by("registry")), hostile.seen


def tag_row(registry: Registry, repository: str, tag: str) -> Tag | None:
    return Tag.objects.filter(repository__registry=registry, repository__name=repository, name=tag).first()


def tag_error(registry: Registry, repository: str, tag: str) -> str:
    row = tag_row(registry, repository, tag)
    assert row is not None, f"{repository}:{tag} was not recorded at all"
    assert row.error, f"{repository}:{tag} has no error"
    return row.error


def lost_of(registry: Registry, goods: list[Good]) -> list[str]:
    """The good tags not stored exactly as the registry serves them."""
    lost = []
    for good in goods:
        row = tag_row(registry, good.repository, good.tag)
        if row is None or row.error or row.digest != good.digest or row.kind != good.kind \
                or tuple(row.platforms) != good.platforms:
            lost.append(f"{good.repository}:{good.tag}")
    return lost


def goods_of(hostile: HostileRegistry, *repositories: str) -> list[Good]:
    return [good for good in hostile.good if good.repository in repositories]


def check_good(figures, request, hostile: HostileRegistry, registry: Registry, *repositories: str,
                client: RegistryClient | None = None) -> None:
    goods = goods_of(hostile, *repositories)
    assert goods, "every case has good items beside its faults"
    lost = lost_of(registry, goods)
    record(figures, request, hostile, checked=goods, lost=lost, client=client)
    assert lost == []


def pages_answer(client, registry: Registry, *, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Every page and API answer about `registry`: all 200, hostile markup never raw in HTML."""
    name = registry.name
    urls = ["/", f"/registries/{name}/", f"/coverage?registry={name}", f"/api/v1/registries/{name}/repositories",
            f"/api/v1/coverage?registry={name}", "/jobs/", *extra]
    for repository in Repository.objects.filter(registry=registry):
        repo = quote(repository.name)
        urls.append(f"/registries/{name}/r/{repo}/")
        for tag in repository.tags.all():
            urls.append(f"/registries/{name}/r/{repo}/t/{quote(tag.name)}")
            urls.append(f"/api/v1/registries/{name}/repositories/{repo}/tags/{quote(tag.name)}")
    answers = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:500])
        body = response.content.decode()
        if url.startswith("/api/"):
            assert response["Content-Type"] == "application/json"
            assert response["X-Content-Type-Options"] == "nosniff"  # JSON is never sniffed as HTML
        else:
            for markup in HOSTILE_MARKUP:
                assert markup not in body, f"{url} shows {markup!r} unescaped"
        answers[url] = body
    return answers
