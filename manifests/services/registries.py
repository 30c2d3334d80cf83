from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings

from registry import RegistryClient

from ..metrics import response_hook_for
from ..models import Registry


def _ca_bundle_path(pem: str) -> str:
    """requests wants a file: keep each distinct bundle once, named by its hash."""
    folder = Path(settings.BASE_DIR) / "var" / "ca"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(pem.encode()).hexdigest()[:32] + ".pem")
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(pem)
        tmp.replace(path)
    return str(path)


def registry_client(*, registry: Registry, **overrides) -> RegistryClient:
    """A client for `registry` with its decrypted credentials."""
    kwargs: dict = {
        "insecure": registry.insecure,
        "timeout": settings.REGISTRY_TIMEOUT_SECONDS,
        "deadline": settings.REGISTRY_DEADLINE_SECONDS,
        "pool_size": max(4, registry.concurrency * 2),
        "expected_realm_origin": registry.token_realm_origin,
    }
    if registry.auth == Registry.AUTH_BASIC:
        kwargs["username"] = registry.username
        kwargs["password"] = registry.get_secret()
    elif registry.auth == Registry.AUTH_TOKEN:
        if registry.username:
            # GHCR, Docker Hub: a personal token is a password for the token realm.
            kwargs["username"] = registry.username
            kwargs["password"] = registry.get_secret()
        else:
            kwargs["token"] = registry.get_secret()
    if registry.ca_bundle.strip() and not registry.insecure:
        kwargs["ca_bundle"] = _ca_bundle_path(registry.ca_bundle.strip())
    kwargs.update(overrides)
    client = RegistryClient(registry.url, **kwargs)
    # Counts every response for /metrics (manifests/metrics.py), across processes.
    client.session.hooks["response"].append(response_hook_for(registry=registry.name))
    return client


def registry_check_enqueue(*, registry: Registry, user=None):
    """Test a registry's URL and credentials on the worker (no registry I/O in a web request)."""
    from ..models import Job
    from ..tasks import check_run
    from . import jobs, queue

    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = jobs.job_create(kind=Job.KIND_CHECK, registry=registry, target=registry.name, params={}, user=user)
    queue.job_enqueue(task=check_run, job=job)
    return job


def registry_check_run(*, job_id: int, worker: str = "") -> None:
    """GET /v2/ with the stored credentials, then one page of the catalog (or of a watched repository's tags)."""
    from . import jobs

    jobs.job_run(job_id=job_id, runner=_check, worker=worker)


def _check(job, progress) -> None:
    from itertools import islice

    from . import jobs

    registry = job.registry
    with registry_client(registry=registry) as client:
        client.ping()
        progress({"event": "ping", "note": "the registry answers and accepts the credentials"})
        if registry.watch_list:
            name = registry.watch_list[0]
            sample = list(islice(client.tags(name, page_size=10), 10))
            progress({"event": "tags", "name": name, "note": f"{len(sample)} tags readable"})
        else:
            sample = list(islice(client.catalog(page_size=10), 10))
            progress({"event": "catalog", "note": f"{len(sample)} repositories readable"})
        result = {"sample": sample, "requests": dict(client.counters),
                  "rate_limit": client.rate_limit.__dict__ if client.rate_limit else None}
        if client.realm_origin and not registry.token_realm_origin:
            registry_realm_record(registry=registry, origin=client.realm_origin)
            progress({"event": "realm", "note": f"token realm {client.realm_origin} recorded"})
    jobs.job_finish(job=job, progress=progress, result=result)


def registry_realm_record(*, registry: Registry, origin: str) -> None:
    """Record the token realm's origin the first time it is seen; later clients refuse any other."""
    Registry.objects.filter(pk=registry.pk, token_realm_origin="").update(token_realm_origin=origin)
    registry.token_realm_origin = origin


def registry_realm_forget(*, registry: Registry) -> None:
    """Forget the recorded token realm (a registry that really moved it): the next check records anew."""
    Registry.objects.filter(pk=registry.pk).update(token_realm_origin="")
    registry.token_realm_origin = ""
