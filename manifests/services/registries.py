from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from registry import RegistryClient, errors

from ..metrics import registry_requests_flush, response_hook_for
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
    client.on_close.append(registry_requests_flush)
    return client


_kept = threading.local()  # this thread's client per registry: (settings key, client)


def _client_key(registry: Registry) -> tuple:
    """What a kept client was made from: a change to any of it (a new password, another URL) makes a new one."""
    return (registry.name, registry.url, registry.auth, registry.username, registry.secret_encrypted, registry.insecure,
            registry.ca_bundle, registry.concurrency, registry.token_realm_origin,
            settings.REGISTRY_TIMEOUT_SECONDS, settings.REGISTRY_DEADLINE_SECONDS)


@contextmanager
def registry_client_kept(*, registry: Registry) -> Iterator[RegistryClient]:
    """A client for `registry` kept by this thread between uses: a worker scans one repository after
    another, and a new client for each opened new connections (and, on a token registry, asked for new
    tokens). Its counts start at zero for each use. One that raised anything but a registry's error is
    closed rather than kept."""
    clients: dict[int, tuple[tuple, RegistryClient]] = _kept.__dict__.setdefault("clients", {})
    key = _client_key(registry)
    kept = clients.pop(registry.pk, None)
    if kept is not None and kept[0] != key:
        kept[1].close()
        kept = None
    client = kept[1] if kept is not None else registry_client(registry=registry)
    client.counts_reset()
    keep = False
    try:
        yield client
        keep = True
    except errors.RegistryError:
        keep = True  # the registry's answer, not a broken client
        raise
    finally:
        if keep:
            clients[registry.pk] = (key, client)
        else:
            client.close()
        registry_requests_flush()


def registry_check_submit(*, registry: Registry, user=None):
    """Test a registry's URL and credentials on the worker (no registry I/O in a web request)."""
    from .. import jobs
    from ..models import Job

    return jobs.job_submit(kind=Job.KIND_CHECK, registry=registry, target=registry.name, params={}, user=user)


DRAFT_FIELDS = ("name", "url", "auth", "username", "insecure", "ca_bundle", "watch")


def registry_draft_check_submit(*, draft: Registry, secret: str, editing: Registry | None = None, user=None):
    """"Test connection" before saving: check unsaved settings on the worker.

    The job's params hold the settings, the secret encrypted (manifests/crypto.py)
    and dropped from the params once the check has run (registry_draft_forget).
    `editing` is the saved registry the form edits: the job is linked to it, and
    its recorded token realm still binds the check while the URL is the same.
    """
    from .. import jobs
    from ..crypto import encrypt
    from ..models import Job

    params = {field: getattr(draft, field) for field in DRAFT_FIELDS}
    params["secret_encrypted"] = encrypt(secret)
    params["token_realm_origin"] = editing.token_realm_origin if editing and editing.url == draft.url else ""
    return jobs.job_submit(kind=Job.KIND_CHECK, registry=editing, target=draft.name or draft.url,
                           params={"draft": params}, user=user)


def registry_draft_forget(job_id: int) -> None:
    """After a check job's run: a check of unsaved settings forgets their secret once it has ended."""
    from ..models import Job

    job = Job.objects.filter(pk=job_id).first()
    if job is not None and job.is_done and job.params.get("draft", {}).pop("secret_encrypted", None) is not None:
        Job.objects.filter(pk=job_id).update(params=job.params)


def _draft(params: dict) -> Registry:
    registry = Registry(**{field: params.get(field, "") for field in DRAFT_FIELDS})
    registry.secret_encrypted = params.get("secret_encrypted", "")
    registry.token_realm_origin = params.get("token_realm_origin", "")
    return registry


def registry_check_execute(job, progress) -> None:
    """The runner of a check job (jobs.KINDS): GET /v2/ with the stored credentials, then one page of the
    catalog (or of a watched repository's tags). A check of unsaved settings ("draft" in the params) uses
    those instead."""
    from itertools import islice

    from .. import jobs

    draft = job.params.get("draft")
    if draft is None and job.registry is None:
        raise jobs.JobFailed("the registry was removed")
    registry = _draft(draft) if draft is not None else job.registry
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
        if client.realm_origin and not registry.token_realm_origin and draft is None:
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
