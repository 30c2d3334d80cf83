"""A reproducible registry: R repositories x T tags of small real images, from a seed.

Pushing 10,000 tags one image at a time would take most of an hour. Instead a
plan is drawn first (pure, from `random.Random(seed)`): per repository a pool
of distinct manifests (single images, Docker lists, OCI indexes with buildx
attestations, per-arch tags of list children, the same image as Docker and as
OCI sharing one config), then many tags pointing at them. Pushing is then:
one base layer per platform uploaded once and mounted everywhere, one config
upload and one manifest PUT per image, and one PUT by tag per tag (a PUT of a
manifest the registry already holds is a single request), all in threads.

Layers, configs, manifests and attestations are built by registry/images.py's
pure builders, the ones `image_push` and `attestation_push` push (gzip'd tar
layers, configs with diff_ids, an in-toto layer and the empty `{}` config).
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from registry import RegistryClient
from registry.images import attestation_build, config_build, image_manifest_build, index_build, layer
from registry.mediatypes import (
    ATTESTATION_MANIFEST,
    ATTESTATION_REFERENCE_DIGEST,
    ATTESTATION_REFERENCE_TYPE,
    OCI_MANIFEST,
    Descriptor,
    sha256_digest,
)
from registry.platform import Platform

# (os, architecture, variant, os.version)
LINUX = [("linux", "amd64", "", ""), ("linux", "arm64", "", ""), ("linux", "arm", "v7", ""),
         ("linux", "ppc64le", "", ""), ("linux", "s390x", "", ""), ("linux", "386", "", "")]
WINDOWS = [("windows", "amd64", "", "10.0.17763.6893"), ("windows", "amd64", "", "10.0.20348.3328")]
GROUPS = ["platform", "data", "web", "tools", "ml"]
BIG_REPOSITORY = "bench/big"

TOP_RATIO = 0.3  # distinct taggable manifests per tag: ~3 tags share each digest
LIST_RATIO = 0.45
ATTESTED_RATIO = 0.6  # of lists
ARCH_TAG_RATIO = 0.3  # of lists: one child also tagged `<version>-<arch>`
TWIN_RATIO = 0.1  # of single images: also pushed in the other format, same config
MIRROR_RATIO = 0.1  # of repositories: a copy of an earlier one (digests shared across repositories)


@dataclass(frozen=True)
class PoolManifest:
    digest: str
    media_type: str
    raw: bytes
    kind: str  # image, attestation, index
    blobs: tuple[str, ...] = ()  # config and layers, for images

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass
class RepoPlan:
    name: str
    manifests: list[PoolManifest] = field(default_factory=list)  # push order: children first
    taggable: list[PoolManifest] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    blobs: dict[str, bytes] = field(default_factory=dict)  # uploaded here
    mounts: dict[str, str] = field(default_factory=dict)  # blob digest -> repository it is mounted from
    mirror_of: str = ""

    def manifest(self, digest: str) -> PoolManifest:
        return next(m for m in self.taggable if m.digest == digest)


@dataclass
class Plan:
    seed: int
    repos: int
    tags_per_repo: int
    big_tags: int
    repositories: list[RepoPlan]
    base_layers: dict[str, bytes]  # digest -> bytes, uploaded into the first repository

    @property
    def total_tags(self) -> int:
        return sum(len(r.tags) for r in self.repositories)

    def describe(self) -> dict:
        kinds: Counter[str] = Counter()
        digests: set[str] = set()
        configs: set[str] = set()
        for repo in self.repositories:
            for manifest in repo.manifests:
                if manifest.digest in digests:
                    continue
                digests.add(manifest.digest)
                kinds[manifest.kind] += 1
                if manifest.kind != "index":
                    configs.add(manifest.blobs[0])
        tagged = Counter()
        for repo in self.repositories:
            for digest in repo.tags.values():
                tagged[next(m.kind for m in repo.taggable if m.digest == digest)] += 1
        return {
            "repositories": len(self.repositories),
            "mirrors": sum(1 for r in self.repositories if r.mirror_of),
            "tags": self.total_tags,
            "tags_by_target_kind": dict(tagged),
            "distinct_manifests": len(digests),
            "distinct_manifests_by_kind": dict(kinds),
            "distinct_configs": len(configs),
            "distinct_tag_digests": len({(d) for r in self.repositories for d in r.tags.values()}),
            "fingerprint": self.fingerprint(),
        }

    def fingerprint(self) -> str:
        """sha256 over every repository:tag=digest, to show two runs generated the same registry."""
        text = "\n".join(f"{r.name}:{t}={d}" for r in self.repositories for t, d in sorted(r.tags.items()))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class _Builder:
    """Draws one repository's pool and tags."""

    def __init__(self, rng: random.Random, base: dict[tuple, tuple[str, int, str]]) -> None:
        self.rng = rng
        self.base = base  # platform tuple -> (layer digest, size, diff_id)

    def image(self, repo: RepoPlan, platform: tuple, *, version: str, created: str, oci: bool,
              config_raw: bytes | None = None) -> tuple[PoolManifest, bytes]:
        layer_digest, layer_size, diff_id = self.base[platform]
        if config_raw is None:
            config_raw = config_build(Platform(*platform), diff_id=diff_id, created=created,
                                      created_by="bench generator",
                                      config={"Cmd": ["/bin/sh"], "Env": [f"VERSION={version}"],
                                              "Labels": {"org.opencontainers.image.version": version,
                                                         "org.opencontainers.image.source": repo.name}})
        config_digest = sha256_digest(config_raw)
        repo.blobs[config_digest] = config_raw
        media_type, raw = image_manifest_build(config_raw=config_raw, layer_digest=layer_digest,
                                               layer_size=layer_size, oci=oci)
        manifest = PoolManifest(sha256_digest(raw), media_type, raw, "image", (config_digest, layer_digest))
        repo.manifests.append(manifest)
        return manifest, config_raw

    def attestation(self, repo: RepoPlan, subject: PoolManifest) -> PoolManifest:
        statement, empty, raw = attestation_build(repository=repo.name, subject_digest=subject.digest)
        for blob in (statement, empty):
            repo.blobs[sha256_digest(blob)] = blob
        manifest = PoolManifest(sha256_digest(raw), OCI_MANIFEST, raw, "attestation",
                                (sha256_digest(empty), sha256_digest(statement)))
        repo.manifests.append(manifest)
        return manifest

    @staticmethod
    def _descriptor(manifest: PoolManifest, platform: tuple, annotations: dict | None = None) -> Descriptor:
        return Descriptor(manifest.media_type, manifest.digest, manifest.size, Platform(*platform),
                          annotations or {})

    def repository(self, name: str, tag_count: int) -> RepoPlan:
        rng = self.rng
        repo = RepoPlan(name=name)
        top = max(1, round(tag_count * TOP_RATIO))
        primary: list[tuple[str, PoolManifest]] = []  # (tag name, manifest): one per taggable manifest
        start = 1577836800 + rng.randrange(0, 3 * 365) * 86400  # 2020 + up to 3 years
        for index in range(top):
            version = f"{1 + index // 100}.{(index // 10) % 10}.{index % 10}"
            stamp = start + index * 86400 * rng.randint(1, 9) // 3 + rng.randrange(86400)
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
            if rng.random() < LIST_RATIO:
                count = rng.choice([2, 2, 3, 3, 4])
                platforms = rng.sample(LINUX[:4], min(count, 4))
                if rng.random() < 0.1:
                    platforms.append(rng.choice(WINDOWS))
                attested = rng.random() < ATTESTED_RATIO
                docker = not attested and rng.random() < 0.5
                images = [self.image(repo, p, version=version, created=created, oci=not docker)[0]
                          for p in platforms]
                children = [self._descriptor(m, p) for m, p in zip(images, platforms, strict=True)]
                if attested:
                    for image in images:
                        attestation = self.attestation(repo, image)
                        children.append(self._descriptor(
                            attestation, ("unknown", "unknown", "", ""),
                            {ATTESTATION_REFERENCE_TYPE: ATTESTATION_MANIFEST,
                             ATTESTATION_REFERENCE_DIGEST: image.digest}))
                media_type, raw = index_build(children, docker=docker)
                index_manifest = PoolManifest(sha256_digest(raw), media_type, raw, "index")
                repo.manifests.append(index_manifest)
                primary.append((version, index_manifest))
                if rng.random() < ARCH_TAG_RATIO:
                    which = rng.randrange(len(images))
                    arch = platforms[which][1] + platforms[which][2]
                    primary.append((f"{version}-{arch}", images[which]))
            else:
                platform = rng.choice(LINUX[:2] * 4 + LINUX[2:] + WINDOWS)
                oci = rng.random() < 0.3
                image, config_raw = self.image(repo, platform, version=version, created=created, oci=oci)
                primary.append((version, image))
                if rng.random() < TWIN_RATIO:
                    twin, _ = self.image(repo, platform, version=version, created=created, oci=not oci,
                                         config_raw=config_raw)
                    primary.append((f"{version}-{'docker' if oci else 'oci'}", twin))
        primary = primary[-tag_count:]
        repo.taggable = [m for _, m in primary]
        repo.tags = {name: m.digest for name, m in primary}
        # The rest are aliases, newer manifests drawn more often: latest, x.y, x.y.z-N.
        newest = primary[-1][1]
        if len(repo.tags) < tag_count:
            repo.tags["latest"] = newest.digest
        weights = [i + 1 for i in range(len(primary))]
        serial: Counter[str] = Counter()
        while len(repo.tags) < tag_count:
            tag, manifest = rng.choices(primary, weights=weights)[0]
            minor = tag.rsplit(".", 1)[0] if tag.count(".") == 2 and "-" not in tag else ""
            if minor and minor not in repo.tags and rng.random() < 0.3:
                repo.tags[minor] = manifest.digest
                continue
            serial[tag] += 1
            repo.tags[f"{tag}-{serial[tag]}"] = manifest.digest
        return repo


def plan_build(*, repos: int, tags: int, seed: int, big_tags: int = 1000) -> Plan:
    rng = random.Random(seed)
    base: dict[tuple, tuple[str, int, str]] = {}
    base_layers: dict[str, bytes] = {}
    for platform in LINUX + WINDOWS:
        data, diff_id = layer(path="etc/bench-release", content=f"bench base layer {'/'.join(p for p in platform if p)}\n")
        digest = sha256_digest(data)
        base[platform] = (digest, len(data), diff_id)
        base_layers[digest] = data
    builder = _Builder(rng, base)
    plans: list[RepoPlan] = []
    for index in range(repos):
        name = f"{GROUPS[index % len(GROUPS)]}/svc-{index:03d}"
        originals = [p for p in plans if not p.mirror_of]
        if originals and rng.random() < MIRROR_RATIO:
            source = rng.choice(originals)
            plans.append(RepoPlan(name=f"mirror/{source.name}", manifests=list(source.manifests),
                                  taggable=list(source.taggable), tags=dict(source.tags), mirror_of=source.name))
            continue
        plans.append(builder.repository(name, tags))
    if big_tags:
        plans.append(builder.repository(BIG_REPOSITORY, big_tags))
    first = plans[0].name
    for plan in plans:
        for manifest in plan.manifests:
            for digest in manifest.blobs:
                if digest in base_layers and plan.name != first:
                    plan.mounts[digest] = first
        if plan.mirror_of:
            source = next(p for p in plans if p.name == plan.mirror_of)
            for digest in {d for m in plan.manifests for d in m.blobs}:
                plan.mounts.setdefault(digest, source.name)
    return Plan(seed=seed, repos=repos, tags_per_repo=tags, big_tags=big_tags, repositories=plans,
                base_layers=base_layers)


Run = Callable[[list[Callable[[], object]]], None]  # runs steps that do not depend on each other


def _serial(steps: list[Callable[[], object]]) -> None:
    for step in steps:
        step()


def _mount_or_upload(client: RegistryClient, repo: RepoPlan, digest: str, source: str,
                     base_layers: dict[str, bytes]) -> None:
    location = client.mount_blob(repo.name, digest, source)
    if location is not None:  # not mounted: upload it after all
        client.upload_blob(repo.name, digest, base_layers.get(digest) or repo.blobs[digest], location=location)


def _push_pool(client: RegistryClient, repo: RepoPlan, base_layers: dict[str, bytes], *, first: bool,
               run: Run = _serial) -> None:
    """Blobs, then images and attestations, then indexes (whose PUT needs their children present)."""
    if first:
        run([partial(client.upload_blob, repo.name, digest, data) for digest, data in base_layers.items()])
    needed = {d for m in repo.manifests for d in m.blobs}
    run([partial(_mount_or_upload, client, repo, digest, source, base_layers)
         for digest, source in sorted(repo.mounts.items()) if digest in needed]
        + [partial(client.upload_blob, repo.name, digest, data) for digest, data in repo.blobs.items()
           if digest not in repo.mounts and not (first and digest in base_layers)])
    for wave in ([m for m in repo.manifests if m.kind != "index"], [m for m in repo.manifests if m.kind == "index"]):
        run([partial(client.put_manifest, repo.name, m.digest, m.raw, m.media_type) for m in wave])


def _push_tags(client: RegistryClient, repo: RepoPlan, *, run: Run = _serial) -> None:
    """One PUT by tag per tag: the tags of images first, then those of indexes, each digest's tags in
    sequence. Distribution rewrites a manifest's revision link on every PUT, and a concurrent PUT of an
    index that reads that link then fails (MANIFEST_BLOB_UNKNOWN): no index is PUT while its children are."""
    by_digest = {m.digest: m for m in repo.taggable}
    groups: dict[str, list[str]] = {}
    for tag, digest in sorted(repo.tags.items()):
        groups.setdefault(digest, []).append(tag)

    def put(manifest: PoolManifest) -> None:
        for tag in groups[manifest.digest]:
            client.put_manifest(repo.name, tag, manifest.raw, manifest.media_type)

    targets = [by_digest[digest] for digest in groups]
    for wave in ([m for m in targets if m.kind != "index"], [m for m in targets if m.kind == "index"]):
        run([partial(put, manifest) for manifest in wave])


def plan_push(plan: Plan, *, url: str, threads: int = 8, log: Callable[[str], None] = print) -> dict:
    """Push the plan; returns timings and request counts by kind. Repositories are pushed side by side,
    each in sequence, but one that holds more than a thread's share of the tags would be the last one
    running alone: its own steps then run side by side."""
    client = RegistryClient(url, insecure=True, pool_size=threads, timeout=60)
    started = time.monotonic()
    timings: dict[str, float] = {}
    try:
        first, rest = plan.repositories[0], plan.repositories[1:]
        _push_pool(client, first, plan.base_layers, first=True)
        large = [r for r in rest if len(r.tags) > plan.total_tags / threads]
        originals = [r for r in rest if not r.mirror_of and r not in large]
        mirrors = [r for r in rest if r.mirror_of and r not in large]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            def side_by_side(steps: list[Callable[[], object]]) -> None:
                list(pool.map(lambda step: step(), steps))

            for repo in large:
                _push_pool(client, repo, plan.base_layers, first=False, run=side_by_side)
            list(pool.map(lambda r: _push_pool(client, r, plan.base_layers, first=False), originals))
            list(pool.map(lambda r: _push_pool(client, r, plan.base_layers, first=False), mirrors))
            timings["pools_seconds"] = time.monotonic() - started
            log(f"  pools pushed in {timings['pools_seconds']:.1f}s, {sum(client.counters.values())} requests")
            tag_started = time.monotonic()
            for repo in large:
                _push_tags(client, repo, run=side_by_side)
            list(pool.map(lambda r: _push_tags(client, r), sorted((r for r in plan.repositories if r not in large),
                                                               key=lambda r: -len(r.tags))))
            timings["tags_seconds"] = time.monotonic() - tag_started
    finally:
        client.close()
    timings["seconds"] = time.monotonic() - started
    return {**timings, "threads": threads, "requests": dict(client.counters),
            "requests_total": sum(client.counters.values())}


def moves_plan(plan: Plan, *, seed: int, fraction: float = 0.01) -> list[tuple[str, str, PoolManifest]]:
    """`fraction` of all tags, each re-pointed to another manifest of its repository's pool."""
    rng = random.Random(f"moves {seed}")
    pairs = [(r, tag) for r in plan.repositories for tag in sorted(r.tags)]
    count = max(1, math.ceil(len(pairs) * fraction))
    moves = []
    for repo, tag in rng.sample(pairs, count):
        choices = [m for m in repo.taggable if m.digest != repo.tags[tag]]
        if choices:
            moves.append((repo.name, tag, rng.choice(choices)))
    return moves


def moves_apply(plan: Plan, moves: list[tuple[str, str, PoolManifest]], *, url: str, threads: int = 8) -> dict:
    client = RegistryClient(url, insecure=True, pool_size=threads, timeout=60)
    started = time.monotonic()
    try:
        by_repo: dict[str, list[tuple[str, str, PoolManifest]]] = {}
        for move in moves:
            by_repo.setdefault(move[0], []).append(move)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda group: [client.put_manifest(n, t, m.raw, m.media_type) for n, t, m in group],
                          by_repo.values()))
    finally:
        client.close()
    by_name = {r.name: r for r in plan.repositories}
    for name, tag, manifest in moves:
        by_name[name].tags[tag] = manifest.digest
    return {"moved": len(moves), "seconds": time.monotonic() - started, "requests": dict(client.counters)}
