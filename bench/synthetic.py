"""What the synthetic inventory holds beside bench.generate's plan, for the pages that need more.

- a second registry (the coverage matrix across all registries reads both);
- two per-arch source repositories of `rule_tags` single images each, tagged
  alike, and a rule that assembles them into one list per tag (a rule's dry
  run of that many tags).

Built from registry/images.py's pure builders, as bench.generate builds its
images, and written by `bench.inproc inventory` through the scan's writers.
"""

from __future__ import annotations

import time

from registry.images import config_build, image_manifest_build, layer
from registry.mediatypes import sha256_digest
from registry.platform import Platform

from .generate import PoolManifest, RepoPlan

SECOND_REGISTRY = "synth-two"
RULE_NAME = "synth-rule"
RULE_TARGET = "rules/app:{tag}"
RULE_SOURCES = (("rules/app-amd64", ("linux", "amd64", "", "")), ("rules/app-arm64", ("linux", "arm64", "", "")))


def rule_sources_plan(tags: int) -> list[RepoPlan]:
    """Two repositories, one per architecture, each with the tags 1.0.0 ... of one image a tag."""
    plans = []
    versions = [f"{1 + i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(tags)]
    for name, platform in RULE_SOURCES:
        data, diff_id = layer(path="etc/bench-release", content=f"bench rule source {name}\n")
        layer_digest = sha256_digest(data)
        repo = RepoPlan(name=name)
        for index, version in enumerate(versions):
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1609459200 + index * 3600))
            config_raw = config_build(Platform(*platform), diff_id=diff_id, created=created,
                                      created_by="bench generator",
                                      config={"Cmd": ["/bin/sh"], "Env": [f"VERSION={version}"],
                                              "Labels": {"org.opencontainers.image.version": version}})
            config_digest = sha256_digest(config_raw)
            repo.blobs[config_digest] = config_raw
            media_type, raw = image_manifest_build(config_raw=config_raw, layer_digest=layer_digest,
                                                   layer_size=len(data), oci=True)
            manifest = PoolManifest(sha256_digest(raw), media_type, raw, "image", (config_digest, layer_digest))
            repo.manifests.append(manifest)
            repo.taggable.append(manifest)
            repo.tags[version] = manifest.digest
        plans.append(repo)
    return plans
