"""The registry client against a real Docker Distribution served over TLS.

The CA and the server certificate (IP SAN 127.0.0.1) are made per module
with `cryptography`; the registry is `docker-registry serve` with its own
`http: tls:` config (manifests.stack.distribution, the certificates from tests.harness.tls).
"""

from __future__ import annotations

import pytest

from manifests.stack.distribution import ADMIN_PASSWORD, ADMIN_USER, registry_start
from manifests.stack.tokenserver import TokenServer
from registry import RegistryClient, errors
from registry.images import image_push
from registry.platform import Platform
from tests.harness.tls import certificate_authority

AMD64 = Platform("linux", "amd64")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return certificate_authority(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory, tls_files):
    running = registry_start(tmp_path_factory.mktemp("tls-registry"), "anonymous", tls_cert=tls_files.cert_path,
                             tls_key=tls_files.key_path)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tls_token_registry(tmp_path_factory, tls_files):
    """Distribution over TLS in `auth: token:` mode whose realm is plain http."""
    folder = tmp_path_factory.mktemp("tls-token-registry")
    token_server = TokenServer(folder, users={ADMIN_USER: ADMIN_PASSWORD}, service="test-registry").start()
    assert token_server.realm.startswith("http://")
    running = registry_start(folder, "token", token_server=token_server, tls_cert=tls_files.cert_path,
                             tls_key=tls_files.key_path)
    yield running
    running.stop()
    token_server.stop()


def test_it_pushes_and_heads_a_manifest_over_tls_verified_with_the_given_ca_bundle(tls_registry, tls_files):
    with RegistryClient(tls_registry.url, ca_bundle=str(tls_files.ca_path)) as client:
        assert client.base_url.startswith("https://127.0.0.1:")
        assert client.session.verify == str(tls_files.ca_path)
        client.ping()
        pushed = image_push(client, repository="tls/verified", tag="v1", platform=AMD64)
        head = client.head_manifest("tls/verified", "v1")
        manifest = client.get_manifest("tls/verified", "v1")
    assert head.digest == pushed.digest == manifest.digest
    assert head.media_type == pushed.media_type
    assert head.size == pushed.size


def test_a_certificate_the_client_does_not_trust_is_a_typed_error_that_names_the_certificate(tls_registry):
    # No ca_bundle, not insecure: the default trust store does not know our CA.
    with RegistryClient(tls_registry.url, timeout=5, max_retries=0) as client:
        with pytest.raises(errors.RegistryUnavailable) as caught:
            client.ping()
    message = str(caught.value).lower()
    assert "certificate" in message, f"the error does not say what is wrong with TLS: {caught.value}"
    assert "verify" in message or "self-signed" in message or "issuer" in message, str(caught.value)


def test_an_untrusted_certificate_is_not_retried_as_if_it_were_transient(tls_registry):
    # A certificate that fails verification fails the same way on every attempt:
    # waiting and retrying only delays the error the user has to act on.
    waits: list[float] = []
    with RegistryClient(tls_registry.url, timeout=5, max_retries=3, sleep=waits.append) as client:
        with pytest.raises(errors.RegistryUnavailable):
            client.ping()
    assert waits == []
    assert client.counters["GET ping"] == 1


def test_a_ca_bundle_of_another_ca_does_not_make_the_certificate_trusted(tls_registry, tmp_path):
    other = certificate_authority(tmp_path / "other-ca")
    with RegistryClient(tls_registry.url, ca_bundle=str(other.ca_path), timeout=5, max_retries=0) as client:
        with pytest.raises(errors.RegistryUnavailable) as caught:
            client.ping()
    assert "certificate" in str(caught.value).lower()


def test_insecure_talks_unverified_tls_as_an_explicit_choice(tls_registry):
    with RegistryClient(tls_registry.url, insecure=True) as client:
        assert client.base_url.startswith("https://"), "insecure must not downgrade https to http"
        assert client.session.verify is False
        pushed = image_push(client, repository="tls/insecure", tag="v1", platform=AMD64)
        assert client.head_manifest("tls/insecure", "v1").digest == pushed.digest


def test_credentials_are_not_sent_to_a_plain_http_token_realm_of_a_registry_not_marked_insecure(
        tls_token_registry, tls_files):
    token_server = tls_token_registry.token_server
    token_server.requests.clear()
    with RegistryClient(tls_token_registry.url, username=ADMIN_USER, password=ADMIN_PASSWORD,
                        ca_bundle=str(tls_files.ca_path)) as client:
        with pytest.raises(errors.Unauthorized) as caught:
            client.ping()
        with pytest.raises(errors.Unauthorized):
            client.head_manifest("tls/token", "v1")
    assert "https" in caught.value.message
    assert token_server.realm.split("/token")[0] in caught.value.message  # names the realm it refused
    assert client.counters["GET token"] == 0
    assert token_server.requests == [], "the token server must not have seen the credentials"


def test_a_plain_http_token_realm_is_used_when_the_registry_is_marked_insecure(tls_token_registry):
    # The contrast to the test above: the same registry and realm, explicitly insecure.
    token_server = tls_token_registry.token_server
    token_server.requests.clear()
    with RegistryClient(tls_token_registry.url, username=ADMIN_USER, password=ADMIN_PASSWORD,
                        insecure=True) as client:
        client.ping()
        pushed = image_push(client, repository="tls/token", tag="v1", platform=AMD64)
        assert client.head_manifest("tls/token", "v1").digest == pushed.digest
    assert token_server.requests and {r["user"] for r in token_server.requests} == {ADMIN_USER}
