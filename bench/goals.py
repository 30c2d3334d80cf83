"""The benchmark's goals, each with what was measured and whether it is met; helpers of the tables."""

from __future__ import annotations

import statistics
from collections.abc import Callable

PAGINATION = ("GET catalog", "GET tags")
P95_TARGET_MS = 200.0
COLD_TARGET, WARM_TARGET, CPU_TARGET = 1.15, 1.10, 1.30
MEMORY_TARGET_MB, MEMORY_TARGET_TAGS = 150.0, 100_000
MIB_MB = 1.048576  # MB (10^6 bytes) in a MiB

Add = Callable[[str, str, bool | None], None]  # add(goal, measured, ok): one row of the goals table


def kinds_text(requests: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(requests.items())) or "none"


def spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    """median [min-max] (n runs)."""
    if not values:
        return "?"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}{unit} (1 run)"
    return f"{med:.{digits}f}{unit} [{min(values):.{digits}f}-{max(values):.{digits}f}] ({len(values)} runs)"


def scans_by_kind(results: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for scan in results.get("scans", []):
        kinds.setdefault(scan["kind"], []).append(scan)
    return kinds


def ratio(scan: dict, key: str = "seconds") -> float:
    return scan["ours"][key] / scan["floor"][key] if scan["floor"][key] else float("inf")


def tool_medians(results: dict) -> dict[str, dict]:
    tools = results.get("tools") or {}
    out: dict[str, dict] = {}
    for run in tools.get("runs", []):
        if "error" in run:
            out[run["tool"]] = {"error": run["error"]}
            continue
        out.setdefault(run["tool"], {"runs": []})["runs"].append(run)
    scale = tools.get("total_tags", 0) / tools["sample"] if tools.get("sample") else 0
    for entry in out.values():
        runs = entry.get("runs")
        if not runs:
            continue
        entry["seconds"] = [r["seconds"] for r in runs]
        entry["per_tag_ms"] = statistics.median(1000 * r["seconds"] / r["tags"] for r in runs)
        entry["requests_per_tag"] = statistics.median(r["total"] / r["tags"] for r in runs)
        entry["all_seconds"] = statistics.median(entry["seconds"]) * scale
        entry["all_requests"] = round(entry["requests_per_tag"] * tools["total_tags"])
        entry["cpu_per_tag_ms"] = statistics.median(1000 * r["cpu_seconds"] / r["tags"] for r in runs)
        entry["failures"] = sum(r["failures"] for r in runs)
    return out


def _scan_goals(results: dict, add: Add) -> None:
    """Time, CPU, requests and memory of the scans against the floor."""
    kinds = scans_by_kind(results)
    for kind, target in (("cold", COLD_TARGET), ("warm", WARM_TARGET)):
        scans = kinds.get(kind, [])
        if not scans:
            continue
        ratios = [ratio(s) for s in scans]
        add(f"{kind.capitalize()} scan through the fan-out at most {target}x the floor",
            f"ratio {spread(ratios, 'x')}; ours {spread([s['ours']['seconds'] for s in scans], ' s')}, "
            f"floor {spread([s['floor']['seconds'] for s in scans], ' s')}",
            statistics.median(ratios) <= target)
        cpu = [ratio(s, "cpu_seconds") for s in scans]
        add(f"{kind.capitalize()} scan: client CPU at most {CPU_TARGET}x the floor's",
            f"ratio {spread(cpu, 'x')}; worker {spread([s['ours']['cpu_seconds'] for s in scans], ' s', 1)}, "
            f"floor {spread([s['floor']['cpu_seconds'] for s in scans], ' s', 1)}",
            statistics.median(cpu) <= CPU_TARGET)
    for scan in kinds.get("cold", [])[:1]:
        ours = {k: v for k, v in scan["ours"]["requests"].items() if k not in PAGINATION}
        floor = {k: v for k, v in scan["floor"]["requests"].items() if k not in PAGINATION}
        add("Cold scan: requests at the floor (pagination aside)",
            f"ours {sum(ours.values()):,} ({kinds_text(ours)}) vs floor {sum(floor.values()):,}",
            sum(ours.values()) <= sum(floor.values()))
    repeated = {s["name"]: sum(s["ours_log"]["repeated_digest_gets"].values()) for s in results.get("scans", [])}
    for run in (results.get("scaleout") or {}).get("runs", []):
        repeated[f"PostgreSQL {run['name']}"] = sum(run["ours_log"]["repeated_digest_gets"].values())
    if repeated:
        add("No GET of a digest already fetched in the same scan, across repositories too (access log)",
            "; ".join(f"{k}: {v}" for k, v in repeated.items()), not any(repeated.values()))
    for kind in ("warm", "moved"):
        for scan in kinds.get(kind, [])[:1]:
            ours = scan["ours"]["requests"]
            others = {k: v for k, v in ours.items() if k not in PAGINATION and k != "HEAD manifest"}
            add(f"{scan['name']}: one HEAD per tag, a GET only for a digest never seen",
                f"{ours.get('HEAD manifest', 0):,} HEAD for {scan['ours']['totals']['tags']:,} tags; other "
                f"{kinds_text(others)} (floor: {kinds_text({k: v for k, v in scan['floor']['requests'].items() if k not in PAGINATION and k != 'HEAD manifest'})})",
                ours.get("HEAD manifest", 0) == scan["ours"]["totals"]["tags"]
                and sum(others.values()) <= sum(v for k, v in scan["floor"]["requests"].items()
                                                if k not in PAGINATION and k != "HEAD manifest"))


def _memory_goals(results: dict, add: Add) -> None:
    """The worker's peak during the memory phase's cold scan (bench/memory.py), beside the scans' own."""
    goal = f"Worker peak memory during a cold scan under {MEMORY_TARGET_MB:.0f} MB at {MEMORY_TARGET_TAGS:,} tags"
    peaks = [max(s["ours"]["peak_rss_mib"]) for s in scans_by_kind(results).get("cold", [])]
    beside = (f"; at {results['generation']['plan']['tags']:,} tags (the scans above) {spread(peaks, ' MiB', 0)}"
              if peaks else "")
    memory = results.get("memory")
    if not memory:
        add(goal, f"not measured in this run (--skip-memory){beside}", None)
        return
    if "error" in memory:
        add(goal, f"the memory phase failed: {memory['error'][-300:]}{beside}", None)
        return
    scan, plan = memory["scan"], memory["generation"]["plan"]
    peak = max(scan["peak_rss_mib"])
    check = scan["ours_check"]
    correct = scan["status"] == "succeeded" and not check["wrong_or_missing"] and not check["extra"]
    text = (f"{peak:.0f} MiB ({peak * MIB_MB:.0f} MB) at {plan['tags']:,} tags in {plan['repositories']:,} "
            f"repositories, the largest of {memory['big_tags']:,} (VmHWM of the worker's pool process, one cold "
            f"scan, {scan['seconds']:.0f} s; {check['expected'] - check['wrong_or_missing']:,}/{check['expected']:,} "
            f"tags correct: see Memory at {plan['tags']:,} tags){beside}")
    if plan["tags"] < MEMORY_TARGET_TAGS:
        add(goal, f"{text}; fewer than {MEMORY_TARGET_TAGS:,} tags: no verdict", None)
        return
    add(goal, text, correct and peak * MIB_MB < MEMORY_TARGET_MB)


def _tool_goals(results: dict, add: Add) -> None:
    """Ours against the CLI tools."""
    kinds = scans_by_kind(results)
    tools = tool_medians(results)
    cold = kinds.get("cold", [])
    if tools and cold:
        ours_cold = statistics.median(s["ours"]["seconds"] for s in cold)
        for tool, entry in tools.items():
            if "error" in entry:
                add(f"Ahead of `{tool}` per tag", entry["error"], None)
                continue
            add(f"Ahead of `{tool}` per tag (every tag's platforms, same concurrency)",
                f"ours cold {ours_cold:.1f} s vs {entry['all_seconds']:.0f} s for all tags (from a sample of "
                f"{results['tools']['sample']}: {entry['per_tag_ms']:.0f} ms and {entry['requests_per_tag']:.2f} "
                f"requests a tag); {entry['failures']} failed calls", ours_cold < entry["all_seconds"])


def _page_goals(results: dict, add: Add) -> None:
    """Page latency and constant queries."""
    for database in (results.get("synthetic") or {}).get("databases", []):
        for item in database["load"]:
            first = f", first request {item['first_ms']:.0f} ms" if "first_ms" in item else ""
            add(f"p95 under {P95_TARGET_MS:.0f} ms at {database['written']['tags']:,} tags, {database['database']}: "
                f"{item['label']} ({item['clients']} clients)",
                f"p95 {item['p95_ms']:.0f} ms, p50 {item['p50_ms']:.0f} ms{first}, {item['queries']} queries, "
                f"statuses {item['statuses']}",
                item["p95_ms"] < P95_TARGET_MS and {int(code) for code in item["statuses"]} == {200})
    constant = queries_by_page(results)
    for page, counts in constant.items():
        values = {c for c, _ in counts}
        add(f"Constant SQL queries per page: {page}", " / ".join(f"{c} ({size})" for c, size in counts),
            len(values) == 1)


def _scaleout_goals(results: dict, add: Add) -> None:
    """Scale-out figures (no target)."""
    scale = results.get("scaleout")
    if scale and scale.get("runs"):
        runs = {(r["kind"], r["workers"]): r for r in scale["runs"]}
        for kind in ("cold", "warm"):
            one = runs.get((kind, 1))
            if one:
                text = "; ".join(f"{n} worker{'s' if n > 1 else ''} {runs[(kind, n)]['seconds']:.1f} s "
                                 f"({one['seconds'] / runs[(kind, n)]['seconds']:.2f}x)"
                                 for n in sorted({w for k, w in runs if k == kind}))
                add(f"Scale-out on PostgreSQL, {kind}", text, None)


def goals_evaluate(results: dict) -> list[dict]:
    """Every goal with what was measured and whether it is met (None: no target, or not measured)."""
    rows: list[dict] = []

    def add(goal: str, measured: str, ok: bool | None) -> None:
        rows.append({"goal": goal, "measured": measured, "ok": ok})

    for section in (_scan_goals, _memory_goals, _tool_goals, _page_goals, _scaleout_goals):
        section(results, add)
    return rows


def queries_by_page(results: dict) -> dict[str, list[tuple[int, str]]]:
    """Queries per page kind at every size measured: the scanned registry and the synthetic inventories."""
    out: dict[str, list[tuple[int, str]]] = {}
    for item in (results.get("pages") or {}).get("queries", []):
        out.setdefault(item["page"], []).append((item["queries"], item["size"]))
    for database in (results.get("synthetic") or {}).get("databases", []):
        for item in database["load"]:
            if item["page"] in ("repositories", "tag list", "tag detail", "coverage", "coverage, all registries",
                                "rule dry run"):
                out.setdefault(item["page"], []).append(
                    (item["queries"], f"{item['label']}, {database['written']['tags']:,} tags, {database['database']}"))
    return out
