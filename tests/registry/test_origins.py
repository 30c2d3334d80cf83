"""Origins as credentials see them: scheme, host and port, the port made explicit (RFC 6454).

Pure functions of URLs: the registry-facing behaviour is tested against the
hostile registry's second origin in tests/faults/test_hostile_origins.py.
"""

from __future__ import annotations

import pytest

from registry import RegistryClient
from registry.transport import origin_of, origin_text


@pytest.mark.parametrize("same", ["https://ghcr.io", "https://GHCR.io:443/v2/x", "https://user@ghcr.io/"])
def test_the_same_origin_is_the_same_whatever_the_spelling(same):
    with RegistryClient("https://ghcr.io") as client:
        assert client.is_own_origin(same)


@pytest.mark.parametrize("other", [
    "http://ghcr.io",  # the scheme differs: a downgrade
    "https://ghcr.io:8443",  # the port differs, on the same host
    "https://pkg.ghcr.io",  # another host
    "https://ghcr.io.evil.example",
    "https://evil.example/?https://ghcr.io",
])
def test_another_scheme_host_or_port_is_another_origin(other):
    with RegistryClient("https://ghcr.io") as client:
        assert not client.is_own_origin(other)


def test_an_insecure_registry_on_a_port_is_its_own_origin_only_on_that_port():
    with RegistryClient("127.0.0.1:5000", insecure=True) as client:
        assert client.is_own_origin("http://127.0.0.1:5000/v2/")
        assert not client.is_own_origin("http://127.0.0.1:5001/v2/")
        assert not client.is_own_origin("https://127.0.0.1:5000/v2/")


def test_origin_text_drops_user_info_and_path():
    assert origin_text("https://user:secret@auth.example:8443/token?x=1") == "https://auth.example:8443"
    assert origin_of("https://auth.example/token") == ("https", "auth.example", 443)
