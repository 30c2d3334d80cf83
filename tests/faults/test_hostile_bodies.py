"""Hostile registries: bodies too big or too slow, and digests no client should trust.

The registry is tests/faults/hostile/ (a real Docker Distribution cannot be made to
misbehave on cue); fixtures in tests/faults/conftest.py, checks in tests/faults/hostile_checks.py.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from manifests.models import Repository
from registry import RegistryClient, errors
from registry import client as client_module
from registry.transport import MAX_ERROR_BYTES, MAX_PAGE_BYTES, MAX_TOKEN_BYTES, READ_CHUNK
from tests.faults import hostile_checks as checks
from tests.faults.hostile.content import MAX_HANG_SECONDS, MAX_STREAM_BYTES, PASSWORD, USER, Reply
from tests.faults.hostile.server import HostileRegistry

# -- bodies too big or too slow ------------------------------------------------------


@pytest.mark.django_db
def test_case_trickling_server_is_cut_off_at_the_request_deadline(hostile, rest_checked):
    # One byte every 0.5 s never trips a 2 s socket timeout; only the total deadline ends it.
    registry = checks.registry_add(hostile)
    started = time.monotonic()
    checks.scan(registry, "slow/trickle", timeout=2, deadline=2)
    checks.scan(registry, "slow/trickle-list", timeout=2, deadline=2)
    elapsed = time.monotonic() - started
    for tag in ("body", "headers"):
        assert checks.tag_error(registry, "slow/trickle", tag) == \
            "DEADLINE: the registry did not finish answering within 2 s", tag
        assert hostile.count("GET", f"/v2/slow/trickle/manifests/{tag}") == 1  # a deadline is not retried
    assert Repository.objects.get(registry=registry, name="slow/trickle-list").error == \
        "DEADLINE: the registry did not finish answering within 2 s"
    # Three answers that would each trickle on for MAX_HANG_SECONDS (30 s), cut at 2 s each.
    assert elapsed < 3 * 2 + 8 < MAX_HANG_SECONDS, elapsed
    assert all(record.sent < record.declared for record in hostile.streams), hostile.streams
    rest_checked(registry, "slow/trickle")


@pytest.mark.django_db
def test_case_oversized_tag_list_page_is_a_per_repository_error_read_no_further_than_the_cap(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    _, client = checks.scan_client(registry, "huge/page")
    assert Repository.objects.get(registry=registry, name="huge/page").error == \
        f"TOO_LARGE: GET tags answer is over the {MAX_PAGE_BYTES} byte limit"
    assert checks.read_at_most(client, "GET tags", MAX_PAGE_BYTES) > MAX_PAGE_BYTES
    assert checks.hung_up(hostile.streams[0]).hung_up
    checks.scan(registry, "good/app")
    rest_checked(registry, "good/app", client=client)


@pytest.mark.django_db
def test_case_oversized_error_body_is_read_only_up_to_1_mib_and_the_tag_gets_an_error(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    _, client = checks.scan_client(registry, "huge/error")
    assert checks.tag_error(registry, "huge/error", "err") == "UNAVAILABLE: HTTP 500 Internal Server Error"
    assert hostile.count("GET", "/v2/huge/error/manifests/err") == 4  # a 5xx: the first try and 3 retries
    assert checks.read_at_most(client, "GET manifest", MAX_ERROR_BYTES) >= MAX_ERROR_BYTES
    assert client.body_bytes["GET manifest"] <= 4 * (MAX_ERROR_BYTES + READ_CHUNK) + 64 * 1024
    rest_checked(registry, "huge/error", client=client)


def test_case_oversized_token_answer_is_refused_at_64_kib(figures, request):
    with HostileRegistry(auth="bearer") as hostile:
        hostile.token_reply = Reply(200, {"Content-Type": "application/json"}, stream=MAX_STREAM_BYTES,
                                    declare_length=False, fault="token answer over 64 KiB, chunked")
        with RegistryClient(hostile.url, username=USER, password=PASSWORD, insecure=True) as client:
            with pytest.raises(errors.ContentTooLarge) as refused:
                client.ping()
        assert str(refused.value) == f"TOO_LARGE: token answer is over the {MAX_TOKEN_BYTES} byte limit"
        assert checks.read_at_most(client, "GET token", MAX_TOKEN_BYTES) > MAX_TOKEN_BYTES
        assert checks.hung_up(hostile.streams[0]).hung_up
        checks.record(figures, request, hostile, checked=[], lost=[], client=client)


def test_case_trickling_token_service_is_cut_off_at_the_request_deadline(figures, request):
    with HostileRegistry(auth="bearer") as hostile:
        hostile.token_reply = Reply(200, {"Content-Type": "application/json"},
                                    json.dumps({"token": "t" * 200}).encode(), trickle="body",
                                    fault="token answer trickled")
        started = time.monotonic()
        with RegistryClient(hostile.url, username=USER, password=PASSWORD, insecure=True, timeout=2,
                            deadline=2) as client:
            with pytest.raises(errors.RegistryUnavailable) as cut:
                client.ping()
        assert str(cut.value) == "DEADLINE: the token service did not finish answering within 2 s"
        assert time.monotonic() - started < 2 + 8 < MAX_HANG_SECONDS
        checks.record(figures, request, hostile, checked=[], lost=[], client=client)


def test_case_token_that_would_split_the_request_is_refused_before_it_is_sent(figures, request):
    # A line break in the token would end the Authorization header and start one of the service's choosing.
    with HostileRegistry(auth="bearer") as hostile:
        hostile.token_reply = Reply(200, {"Content-Type": "application/json"},
                                    json.dumps({"token": "t0k3n\r\nX-Injected: yes"}).encode(),
                                    fault="token with a line break")
        with RegistryClient(hostile.url, username=USER, password=PASSWORD, insecure=True) as client:
            with pytest.raises(errors.Unauthorized) as refused:
                client.ping()
        assert str(refused.value) == \
            "UNAUTHORIZED: the token service answered with a token that is not printable ASCII"
        assert hostile.count("GET", "/v2/") == 1  # the challenge; never sent again with that token
        checks.record(figures, request, hostile, checked=[], lost=[], client=client)


@pytest.mark.django_db
def test_case_too_many_names_in_one_repository_is_a_per_repository_error(hostile, monkeypatch, rest_checked):
    # The real cap (100,000 names) would take 10,000 pages here; the mechanism is the same at 25.
    monkeypatch.setattr(client_module, "MAX_NAMES", 25)
    registry = checks.registry_add(hostile)
    counts = checks.scan(registry, "loop/endless")
    note = "TOO_MANY_NAMES: more than 25 names in /v2/loop/endless/tags/list: the rest is not read"
    assert counts == {"tags": 0, "errors": 1, "note": note}
    assert hostile.count("GET", "/v2/loop/endless/tags/list") == 3  # 10 names a page: the third passes 25
    checks.scan(registry, "good/app")
    rest_checked(registry, "good/app")


# -- digests ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_case_md5_and_shake_digests_are_refused_as_a_per_tag_error(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    counts = checks.scan(registry, "bad/algorithm")
    assert counts["errors"] == 2
    for tag, algorithm in (("md5", "md5"), ("shake", "shake_128")):
        error = checks.tag_error(registry, "bad/algorithm", tag)
        assert error.startswith("DIGEST_UNSUPPORTED: the digest the registry reports for bad/algorithm:"), error
        assert error.endswith(f"uses the digest algorithm '{algorithm}': only sha256 and sha512 are accepted")
        assert checks.tag_row(registry, "bad/algorithm", tag).digest == ""
    rest_checked(registry, "bad/algorithm")


def test_case_sha512_blobs_are_verified_when_fetched_and_when_streamed(hostile, figures, request):
    with RegistryClient(hostile.url, insecure=True) as client:
        assert client.get_blob("bad/algorithm", hostile.sha512_digest) == hostile.sha512_blob
        with pytest.raises(errors.DigestMismatch):
            client.get_blob("bad/algorithm", hostile.sha512_lying_digest)
        assert client.stream_blob("bad/algorithm", "sink/app", hostile.sha512_digest,
                                  len(hostile.sha512_blob)) == len(hostile.sha512_blob)
        with pytest.raises(errors.DigestMismatch):
            client.stream_blob("bad/algorithm", "sink/app", hostile.sha512_lying_digest, len(hostile.sha512_lie))
        for unsupported in ("md5:" + hashlib.md5(b"x").hexdigest(), "shake_128:" + "ab" * 32):
            with pytest.raises(errors.DigestMismatch) as refused:
                client.get_blob("bad/algorithm", unsupported)
            assert refused.value.code == "DIGEST_UNSUPPORTED"
    assert hostile.faults["sha512 blob whose bytes are other bytes"] == 2
    checks.record(figures, request, hostile, checked=[], lost=[])
