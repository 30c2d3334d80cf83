"""Docker Distribution's push notifications keep the inventory fresh within seconds."""

from __future__ import annotations

import json
import time

import pytest

from manifests.demo import image_push
from manifests.models import Registry, Tag
from manifests.services.jobs import job_create
from manifests.services.scan import scan_job_run
from registry.platform import Platform


@pytest.mark.django_db(transaction=True)
def test_a_tag_re_pushed_shows_its_new_digest_after_the_webhook(fresh_registry, live_server, celery_worker, client,
                                                                 django_user_model):
    running = fresh_registry("anonymous", notify_url=f"{live_server.url}/hooks/registry/hooked")
    registry = Registry.objects.create(name="hooked", url=running.url, insecure=True)
    with running.client() as rc:
        first = image_push(rc, repository="hook/app", tag="v1", platform=Platform("linux", "amd64"))
    scan_job_run(job_id=job_create(kind="scan", registry=registry, target="hooked", params={}).pk)
    assert Tag.objects.get(name="v1").digest == first.digest

    with running.client() as rc:
        second = image_push(rc, repository="hook/app", tag="v1", platform=Platform("linux", "arm64"),
                            content="a new build")
    # Distribution's notification, our webhook, the queue, the worker's scan:
    # seconds; a loaded machine gets room (Distribution backs off on failures).
    deadline = time.monotonic() + 90
    while Tag.objects.get(name="v1").digest != second.digest and time.monotonic() < deadline:
        time.sleep(0.2)
    tag = Tag.objects.get(name="v1")
    assert tag.digest == second.digest, (celery_worker.log()[-2000:], running.log_path.read_text()[-3000:])
    assert tag.platforms == ["linux/arm64"]
    client.force_login(django_user_model.objects.create_user("viewer"))
    page = client.get("/registries/hooked/r/hook/app/t/v1").content.decode()
    assert second.digest in page and first.digest not in page


@pytest.mark.django_db
def test_the_webhook_refuses_a_wrong_token_and_a_bad_body(client):
    Registry.objects.create(name="hooked", url="http://127.0.0.1:9", insecure=True)
    envelope = {"events": [{"action": "push", "target": {"repository": "a/b", "tag": "v1"}}]}
    wrong = client.post("/hooks/registry/hooked", data=json.dumps(envelope), content_type="application/json",
                        HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    bad = client.post("/hooks/registry/hooked", data="{", content_type="application/json",
                      HTTP_AUTHORIZATION="Bearer test-webhook-token")
    assert bad.status_code == 400
    unknown = client.post("/hooks/registry/nope", data=json.dumps(envelope), content_type="application/json",
                          HTTP_AUTHORIZATION="Bearer test-webhook-token")
    assert unknown.status_code == 404
