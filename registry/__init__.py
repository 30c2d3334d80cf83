"""Registry client: pure Python, no Django. The only package that does HTTP."""

from __future__ import annotations

from .client import ManifestHead, RegistryClient
from .errors import RegistryError

__all__ = ["ManifestHead", "RegistryClient", "RegistryError"]
