"""Test-only servers and helpers: the pytest plugin, TCP proxies, receivers, TLS, an OIDC provider,
podman, venvs, secrets. Real services (Distribution, Redis, workers, PostgreSQL) start from
manifests.stack."""
