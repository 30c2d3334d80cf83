"""Registries as the dashboard knows them, for the tests of sources in another registry."""

from __future__ import annotations

from manifests.jobs import job_create, job_run
from manifests.models import Registry


def registry_scanned(running, name: str) -> Registry:
    """`running` registered as `name` (Basic when it has credentials) and scanned once."""
    username, password = running.credentials()
    row = Registry(name=name, url=running.url, insecure=True, auth=Registry.AUTH_BASIC if username else "anonymous",
                   username=username)
    if password:
        row.set_secret(password)
    row.save()
    job_run(inline=True, job_id=job_create(kind="scan", registry=row, target=name, params={}).pk)
    return row
