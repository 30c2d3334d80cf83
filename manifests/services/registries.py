from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings

from registry import RegistryClient

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
        "pool_size": max(4, registry.concurrency * 2),
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
    return RegistryClient(registry.url, **kwargs)
