"""What people use instead of a scan: one CLI process per tag (docker, skopeo)."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import generate
from .common import children_cpu, log
from .registryd import Distribution

TOOLS = {
    # What a script does to know a tag's platforms with each tool: read the manifest; for a single image
    # (whose manifest names no platform), read it again with the config.
    "docker manifest inspect": (["docker", "manifest", "inspect", "--insecure"],
                                ["docker", "manifest", "inspect", "--insecure", "--verbose"]),
    "skopeo inspect --raw": (["skopeo", "inspect", "--raw", "--tls-verify=false"],
                             ["skopeo", "inspect", "--raw", "--config", "--tls-verify=false"]),
}


def tools_measure(args: argparse.Namespace, plan: generate.Plan, distribution: Distribution) -> dict:
    """`docker manifest inspect` and `skopeo inspect --raw` per tag over one random sample of tags,
    with the scan's concurrency; each CLI call is its own process with no cache, so the cost per tag
    does not depend on the others and scales to every tag linearly."""
    log("tools")
    pairs = [(r, t) for r in plan.repositories for t in sorted(r.tags)]
    sample = random.Random(f"tools {args.seed}").sample(pairs, min(args.tool_tags, len(pairs)))
    host = distribution.url.split("://", 1)[1]
    env = {**os.environ, "DOCKER_CONFIG": str(Path(tempfile.mkdtemp(prefix="bench-docker-")))}
    runs: list[dict] = []
    for tool, (first, image) in TOOLS.items():
        if shutil.which(first[0]) is None:
            runs.append({"tool": tool, "error": f"{first[0]} is not installed"})
            continue
        def one(pair, first=first, image=image) -> int:
            repo, tag = pair
            ref = f"{host}/{repo.name}:{tag}" if first[0] == "docker" else f"docker://{host}/{repo.name}:{tag}"
            failures = 0
            for argv in ([first] + ([image] if repo.manifest(repo.tags[tag]).kind == "image" else [])):
                done = subprocess.run([*argv, ref], capture_output=True, env=env, timeout=120)
                failures += done.returncode != 0
            return failures

        for index in range(args.repeat):
            load = round(os.getloadavg()[0], 2)
            start, cpu, registry_cpu = distribution.mark(), children_cpu(), distribution.cpu_seconds()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                failures = sum(pool.map(one, sample))
            seconds = time.monotonic() - started
            count = distribution.count(start)
            entry = {"tool": tool, "run": index + 1, "tags": len(sample), "seconds": seconds,
                     "cpu_seconds": children_cpu() - cpu, "registry_cpu_seconds": distribution.cpu_seconds() - registry_cpu,
                     "requests": dict(count.kinds), "total": count.total, "failures": failures,
                     "loadavg_before": load}
            runs.append(entry)
            log(f"  {tool} #{index + 1}: {len(sample)} tags in {seconds:.1f}s, {count.total} requests, "
                f"{failures} failures")
    return {"sample": len(sample), "total_tags": len(pairs), "concurrency": args.concurrency, "runs": runs}
