"""Push the demo images into a registry and register it in the dashboard.

Idempotent: pushing the same content again yields the same digests.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from manifests.models import Registry
from registry import RegistryClient
from registry.images import attested_index_push, image_push, index_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
ARMV7 = Platform("linux", "arm", "v7")
ARMV6 = Platform("linux", "arm", "v6")
I386 = Platform("linux", "386")
WIN2022 = Platform("windows", "amd64", os_version="10.0.20348.2227")
WIN2019 = Platform("windows", "amd64", os_version="10.0.17763.5329")


def seed(client: RegistryClient) -> list[str]:
    """Push every demo shape; returns what was pushed, for the log."""
    pushed = []
    # The canonical scenario: two single-platform images in two repositories.
    image_push(client, repository="username/x8664-test", tag="latest", platform=AMD64)
    image_push(client, repository="username/arm64v8-test", tag="latest", platform=ARM64)
    pushed += ["username/x8664-test:latest", "username/arm64v8-test:latest"]
    # A buildx-style OCI index with attestation manifests, two tags on one digest.
    index, _, _ = attested_index_push(client, repository="demo/webapp", tag="1.4",
                                      platforms=[AMD64, ARM64, ARMV7])
    client.put_manifest("demo/webapp", "latest", client.get_manifest("demo/webapp", index.digest).raw,
                        index.media_type)
    attested_index_push(client, repository="demo/webapp", tag="1.3", platforms=[AMD64, ARM64])
    pushed += ["demo/webapp:1.4", "demo/webapp:latest", "demo/webapp:1.3"]
    # A Docker manifest list with arm/v6 and arm/v7 side by side.
    images = [image_push(client, repository="demo/tools", tag=None, platform=p)
              for p in (AMD64, ARM64, ARMV7, ARMV6)]
    index_push(client, repository="demo/tools", tag="latest", docker=True,
               children=[image.descriptor() for image in images])
    pushed.append("demo/tools:latest")
    # Windows images differing only by os.version, and a list holding both.
    ltsc2022 = image_push(client, repository="demo/windows-app", tag="ltsc2022", platform=WIN2022)
    ltsc2019 = image_push(client, repository="demo/windows-app", tag="ltsc2019", platform=WIN2019)
    index_push(client, repository="demo/windows-app", tag="latest", docker=True,
               children=[ltsc2022.descriptor(), ltsc2019.descriptor()])
    pushed += ["demo/windows-app:ltsc2022", "demo/windows-app:ltsc2019", "demo/windows-app:latest"]
    # A list that lacks arm64, and a single image that lacks it too.
    legacy = [image_push(client, repository="demo/legacy", tag=None, platform=p) for p in (AMD64, I386)]
    index_push(client, repository="demo/legacy", tag="latest", docker=True,
               children=[image.descriptor() for image in legacy])
    image_push(client, repository="demo/cli", tag="latest", platform=AMD64)
    image_push(client, repository="demo/cli", tag="2.0-arm64", platform=ARM64)
    pushed += ["demo/legacy:latest", "demo/cli:latest", "demo/cli:2.0-arm64"]
    return pushed


class Command(BaseCommand):
    help = "Push demo images to a registry (default: the local demo registry) and register it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("url", help="registry URL, e.g. http://127.0.0.1:5050")
        parser.add_argument("--name", default="demo")
        parser.add_argument("--insecure", action="store_true", help="plain http or unverified TLS")

    def handle(self, *args, url: str, name: str, insecure: bool, **options) -> None:
        with RegistryClient(url, insecure=insecure) as client:
            pushed = seed(client)
        Registry.objects.update_or_create(
            name=name, defaults={"url": url, "insecure": insecure, "auth": Registry.AUTH_ANONYMOUS})
        self.stdout.write(f"seeded {len(pushed)} tags into {url} and registered it as {name!r}")
