"""results.json, results.md (tables and the targets' verdicts), scan.png and pages.png."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

PAGINATION = ("GET catalog", "GET tags")
P95_TARGET_MS = 200.0
TIME_TARGET = 1.5


def _kinds(requests: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(requests.items())) or "none"


def _sum(requests: dict[str, int], *, pagination: bool) -> int:
    return sum(v for k, v in requests.items() if (k in PAGINATION) == pagination)


def _by_kind(results: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for scan in results.get("scans", []):
        kinds.setdefault(scan.get("kind", scan["name"].split("#")[0]), []).append(scan)
    return kinds


def scan_medians(results: dict) -> dict[str, dict]:
    """Per kind of scan: median seconds of ours and of the floor, and the median of the per-run ratios."""
    medians = {}
    for kind, scans in _by_kind(results).items():
        medians[kind] = {
            "runs": len(scans),
            "ours_seconds": statistics.median(s["ours"]["seconds"] for s in scans),
            "floor_seconds": statistics.median(s["floor"]["seconds"] for s in scans),
            "ratio": statistics.median(s["ours"]["seconds"] / s["floor"]["seconds"] for s in scans),
            "ratios": [round(s["ours"]["seconds"] / s["floor"]["seconds"], 2) for s in scans],
        }
    return medians


def targets_evaluate(results: dict) -> list[dict]:
    kinds = _by_kind(results)
    medians = scan_medians(results)
    rows: list[dict] = []

    def add(target: str, measured: str, ok: bool | None) -> None:
        rows.append({"target": target, "measured": measured, "ok": ok})

    for scan in kinds.get("cold", []):
        ours, floor = scan["ours"]["requests"], scan["floor"]["requests"]
        extra = _sum(ours, pagination=False) - _sum(floor, pagination=False)
        add(f"{scan['name']}: requests at most the floor plus pagination",
            f"{_sum(ours, pagination=False):,} vs floor {_sum(floor, pagination=False):,} non-pagination requests "
            f"({extra:+,}); pagination {_sum(ours, pagination=True)} vs {_sum(floor, pagination=True)}",
            extra <= 0)
    for scan in kinds.get("warm", []) + kinds.get("moved", []):
        ours = scan["ours"]["requests"]
        tags = scan["ours"]["totals"]["tags"]
        others = {k: v for k, v in ours.items() if k not in PAGINATION and k != "HEAD manifest"}
        add(f"{scan['name']}: exactly one HEAD per tag plus pagination",
            f"{ours.get('HEAD manifest', 0):,} HEAD for {tags:,} tags; other {_kinds(others)}; "
            f"pagination {_sum(ours, pagination=True)} (floor {_sum(scan['floor']['requests'], pagination=True)})",
            ours.get("HEAD manifest", 0) == tags and not others)
    known_gets = []
    ok = True
    for scan in results.get("scans", []):
        repeated = sum(scan["ours_log"]["repeated_digest_gets"].values())
        gets = 0 if scan.get("kind") == "cold" else \
            scan["ours"]["requests"].get("GET manifest", 0) + scan["ours"]["requests"].get("GET blob", 0)
        known_gets.append(f"{scan['name']}: {repeated + gets:,}")
        ok = ok and repeated + gets == 0
    if known_gets:
        add("Zero GETs of already known digests",
            "; ".join(known_gets) + " (cold: GETs of a digest already fetched in the same scan, from the access "
            "log; re-scans: every GET)", ok)
    for kind in ("cold", "warm", "moved"):
        if kind in medians:
            m = medians[kind]
            add(f"{kind.capitalize()} scan within {TIME_TARGET}x of the floor"
                + (" (not a stated target)" if kind == "moved" else ""),
                f"median {m['ours_seconds']:.2f} s vs {m['floor_seconds']:.2f} s; ratio median {m['ratio']:.2f}x "
                f"over {m['runs']} run(s) {m['ratios']}",
                m["ratio"] <= TIME_TARGET)
    pages = results.get("pages")
    if pages:
        by_page: dict[str, list[str]] = {}
        for item in pages["queries"]:
            by_page.setdefault(item["page"], []).append(f"{item['queries']} ({item['size']})")
        for page, counts in by_page.items():
            values = {c.split(" ", 1)[0] for c in counts}
            add(f"Constant SQL queries per page: {page}", " / ".join(counts), len(values) == 1)
        clients = results["meta"]["clients"]
        for item in pages["load"]:
            if item["clients"] == clients:
                add(f"p95 under {P95_TARGET_MS:.0f} ms: {item['label']} ({clients} clients)",
                    f"p95 {item['p95_ms']:.0f} ms, p50 {item['p50_ms']:.0f} ms", item["p95_ms"] < P95_TARGET_MS)
    scale = results.get("scaleout")
    if scale and scale.get("runs"):
        runs = {(r["kind"], r["workers"]): r for r in scale["runs"]}
        for run in scale["runs"]:
            ours = run["requests"]
            repeated = sum(run["ours_log"]["repeated_digest_gets"].values())
            if run["kind"] == "warm":
                others = {k: v for k, v in ours.items() if k not in PAGINATION and k != "HEAD manifest"}
                add(f"Worker path, {run['name']}: one HEAD per tag plus pagination, no GET",
                    f"{ours.get('HEAD manifest', 0):,} HEAD for {run['totals']['tags']:,} tags; other {_kinds(others)}",
                    ours.get("HEAD manifest", 0) == run["totals"]["tags"] and not others)
            else:
                add(f"Worker path, {run['name']}: no GET of an already fetched digest",
                    f"{repeated:,} repeated digest GETs in the access log", repeated == 0)
        for kind in ("cold", "warm"):
            one, two = runs.get((kind, 1)), runs.get((kind, 2))
            if one and two:
                add(f"Scale-out, {kind}: one worker against two",
                    f"{one['seconds']:.1f} s with 1 worker, {two['seconds']:.1f} s with 2 "
                    f"({one['seconds'] / two['seconds']:.2f}x faster)", None)
    return rows


def _share(run: dict) -> str:
    """How much of the machine's 2 cores the workers and the registry used during the scan."""
    used = (run.get("worker_cpu_seconds") or 0) + (run.get("registry_cpu_seconds") or 0)
    return f"{100 * used / (2 * run['seconds']):.0f}%" if run.get("seconds") else "?"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def markdown(results: dict) -> str:
    meta = results["meta"]
    machine = meta["machine"]
    gen = results["generation"]
    plan = gen["plan"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {meta['date']} on {machine['cpu']} ({machine['cores']} cores, {machine['memory']}), "
        f"kernel {machine['kernel']}, Python {machine['python']}, Django {meta.get('django', '?')}, "
        f"SQLite {meta.get('sqlite', '?')}, Docker Distribution {meta.get('distribution', '?')}; "
        f"commit {machine['commit']}"
        + (f" at the start, {meta['commit_at_end']} at the end (the tree changed during the run)"
           if meta.get("commit_at_end") and meta["commit_at_end"] != machine["commit"] else "")
        + f"; load average at start {machine['loadavg_at_start']}.",
        "",
        f"Seed {meta['seed']}: {meta['repos']} repositories x {meta['tags']} tags + 1 repository of "
        f"{meta['big_tags']} tags = **{plan['tags']:,} tags** in {plan['repositories']} repositories "
        f"({plan['mirrors']} mirrors of others), {plan['distinct_manifests']:,} distinct manifests "
        f"({_kinds(plan['distinct_manifests_by_kind'])}), {plan['distinct_configs']:,} distinct configs, "
        f"{plan['distinct_tag_digests']:,} distinct tagged digests; tags point at {_kinds(plan['tags_by_target_kind'])}. "
        f"Fingerprint {plan['fingerprint'][:23]}...",
        "",
        f"Generation: {gen['push']['seconds']:.1f} s ({gen['push']['pools_seconds']:.1f} s pools, "
        f"{gen['push']['tags_seconds']:.1f} s tags), {gen['push']['requests_total']:,} requests with "
        f"{gen['push']['threads']} threads ({_kinds(gen['push']['requests'])}).",
        "",
        f"Scan concurrency {meta['concurrency']} (the registry's setting) for ours and the floor.",
        "",
        "## Targets",
        "",
        "| Target | Measured | Met |",
        "|---|---|---|",
    ]
    for row in targets_evaluate(results):
        lines.append(f"| {row['target']} | {row['measured']} | {_mark(row['ok'])} |")
    lines += [
        "",
        "## Scans",
        "",
        "| Scan | Ours (s) | Floor (s) | Ratio | Ours requests | Floor requests | Log check | "
        "Repeated digest GETs | Peak RSS (MiB) | DB writes (s) | SQL queries (s in SQL) | CPU s, client: ours / floor | "
        "CPU s, registry: ours / floor | Tags correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scan in results.get("scans", []):
        ours, floor = scan["ours"], scan["floor"]
        log_ok = scan["ours_log"]["requests"] == ours["requests"] and scan["floor_log"]["requests"] == floor["requests"]
        check = scan["ours_check"]
        lines.append(
            f"| {scan['name']}{' (' + str(scan['moved']) + ' moved)' if 'moved' in scan else ''} "
            f"| {ours['seconds']:.2f} | {floor['seconds']:.2f} | {ours['seconds'] / floor['seconds']:.2f}x "
            f"| {ours['total']:,}: {_kinds(ours['requests'])} | {floor['total']:,}: {_kinds(floor['requests'])} "
            f"| {'counters = log' if log_ok else '**differs**: ' + _kinds(scan['ours_log']['requests'])} "
            f"| {sum(scan['ours_log']['repeated_digest_gets'].values()):,} (floor "
            f"{sum(scan['floor_log']['repeated_digest_gets'].values())}) "
            f"| {ours['maxrss_mib']:.0f} (after setup {ours['baseline_rss_mib']:.0f}) "
            f"| {ours.get('db_write_seconds', 0):.2f} | {ours['sql_queries']:,} ({ours['sql_seconds']:.2f}) "
            f"| {_num(ours.get('cpu_seconds'))} / {_num(floor.get('cpu_seconds'))} "
            f"| {_num(ours.get('registry_cpu_seconds'))} / {_num(floor.get('registry_cpu_seconds'))} "
            f"| {check['expected'] - check['wrong_or_missing']:,}/{check['expected']:,}"
            f"{', ' + str(check['extra']) + ' extra' if check['extra'] else ''} |")
    medians = scan_medians(results)
    if medians:
        lines += ["", "Medians: " + "; ".join(
            f"{kind} ours {m['ours_seconds']:.2f} s, floor {m['floor_seconds']:.2f} s, ratio {m['ratio']:.2f}x "
            f"({m['runs']} runs)" for kind, m in medians.items()) + "."]
    functions = next((s["ours"].get("db_write_functions") for s in results.get("scans", [])), None) or \
        ["_store_manifest", "_apply", "repository_aggregate"]
    lines += ["", f"DB writes: time inside {', '.join(f'`{f}`' for f in functions)}, which run on the "
              "scanning thread after each repository's fetches, while no request is in flight. SQL queries count "
              "every thread's statements (the fetching threads look digests up). Load average "
              "before each scan: " + ", ".join(f"{s['name']} {s.get('loadavg_before', ['?'])[0]}"
                                               for s in results.get("scans", [])) + "."]
    for scan in results.get("scans", [])[:1]:
        top = scan["ours"].get("sql_top") or []
        if top:
            lines += ["", f"Costliest SQL statements in {scan['name']} (all threads; seconds are summed over threads):",
                      "", "| Statement (start) | Count | Seconds |", "|---|---|---|"]
            lines += [f"| `{t['sql'][:100]}` | {t['count']:,} | {t['seconds']:.2f} |" for t in top]
    first = next((s for s in results.get("scans", []) if s["ours_log"].get("repeated_top")), None)
    if first:
        empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        top = ", ".join(f"`{d[:19]}...` +{n}" + (" (the `{}` config of every attestation)" if d == empty else "")
                        for d, n in first["ours_log"]["repeated_top"])
        lines += ["", f"Repeated digest GETs in {first['name']}: {sum(first['ours_log']['repeated_digest_gets'].values())}"
                  f" extra GETs of {first['ours_log']['repeated_distinct']} distinct digests; the most repeated: {top}. "
                  f"Example: `{first['ours_log']['repeated_examples'][0]}`."]
    scale = results.get("scaleout")
    if scale:
        medians = scan_medians(results)
        lines += [
            "",
            "## Scale-out",
            "",
            "A whole-registry scan as the app runs it: `scan_enqueue` queues `scan_run`, which lists the "
            "repositories and fans out one `scan_repository_run` task per repository; the last part to finish "
            "closes the job. Timed from `scan_enqueue` until the job row is done, with Celery workers of "
            f"`-c {scale['worker_concurrency']}` each on the bench's Redis and a fresh SQLite file per worker "
            "count (the warm scan re-scans what the cold one stored). The machine has 2 cores for the registry, "
            "the workers and SQLite together. Peak RSS is each worker's largest VmHWM (its pool child).",
            "",
            "| Scan | Seconds | Parts | Requests | CPU s: workers / registry (share of 2 cores) "
            "| Peak RSS per worker (MiB) | Load avg before | Tags correct |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for run in scale.get("runs", []):
            check = run["ours_check"]
            lines.append(f"| {run['name']} | {run['seconds']:.2f} | {run['parts']} "
                         f"| {sum(run['requests'].values()):,}: {_kinds(run['requests'])} "
                         f"| {_num(run.get('worker_cpu_seconds'))} / {_num(run.get('registry_cpu_seconds'))} "
                         f"({_share(run)}) "
                         f"| {', '.join(f'{p:.0f}' for p in run['peak_rss_mib'])} | {run.get('loadavg_before', '?')} "
                         f"| {check['expected'] - check['wrong_or_missing']:,}/{check['expected']:,} |")
        lines += ["", "In-process `scan_job_run` (one task walking every repository), concurrency 4 against 8:", "",
                  "| Scan | Seconds | Requests | Peak RSS (MiB) | Tags correct |", "|---|---|---|---|---|"]
        for label, kind, key in (("cold", "cold", "concurrency8_cold"), ("warm", "warm", "concurrency8_warm")):
            if kind in medians:
                lines.append(f"| {label}, concurrency 4 (median of {medians[kind]['runs']}) "
                             f"| {medians[kind]['ours_seconds']:.2f} | | | |")
            ours, check = scale[key]["ours"], scale[key]["ours_check"]
            lines.append(f"| {label}, concurrency 8 | {ours['seconds']:.2f} | {sum(ours['requests'].values()):,} "
                         f"| {ours['maxrss_mib']:.0f} | {check['expected'] - check['wrong_or_missing']:,}"
                         f"/{check['expected']:,} |")
    pages = results.get("pages")
    if pages:
        lines += [
            "",
            "## Pages",
            "",
            f"gunicorn `config.wsgi -w {pages['workers']}` (sync workers), SQLite file of the scans, logged in "
            "with a session cookie; the load generator runs on the same 2 cores. Latency per request, "
            "after 3 warm-up requests per client. Load average before each: "
            + ", ".join(f"{i['page']} x{i['clients']} {i.get('loadavg_before', '?')}" for i in pages["load"]) + ".",
            "",
            "| Page | Path | Clients | Requests | p50 (ms) | p95 (ms) | max (ms) | req/s | Bytes |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for item in pages["load"]:
            lines.append(f"| {item['label']} | `{item['path']}` | {item['clients']} | {item['requests']} "
                         f"| {item['p50_ms']:.0f} | {item['p95_ms']:.0f} | {item['max_ms']:.0f} "
                         f"| {item['throughput_rps']:.1f} | {item['bytes']:,} |")
        lines += [
            "",
            "SQL queries per page (django.test.Client in-process, CaptureQueriesContext, after one warm-up "
            "request; a second registry `bench-small` scanning the first 10 repositories gives the small size):",
            "",
            "| Page | Size | Queries | Time in-process (ms) | Status |",
            "|---|---|---|---|---|",
        ]
        for item in pages["queries"]:
            lines.append(f"| {item['page']} | {item['size']} | {item['queries']} | {1000 * item['seconds']:.0f} "
                         f"| {item['status']} |")
    lines += [
        "",
        "## How this was measured",
        "",
        "- `make bench` (or `.venv/bin/python -m bench [--repos R --tags T --seed S --out DIR]`, `--quick` "
        "for 10 x 20) starts Docker Distribution on a free loopback port with its access log on, a private "
        "Redis, and later gunicorn; everything runs on this machine.",
        "- Ours: `manifests.services.scan.scan_job_run` on a `Job` from `jobs.job_create`, in a fresh "
        "subprocess per scan on a SQLite file (migrated once, copied per series). Wall time is around "
        "`scan_job_run` only (no interpreter start). Requests come from the client's counters "
        "(`Job.result['requests']`) and are checked against the access log lines between two marks, by "
        "user agent. Peak RSS is the subprocess's `ru_maxrss`; SQL queries are counted and timed with "
        "`connection.execute_wrapper`. After each scan every stored tag's digest is compared with the "
        "generated registry.",
        "- Floor: bench/floor.py, plain `requests`, one session, the same number of threads; cold = catalog "
        "pages + tags lists + one GET per tag + one GET per unseen child manifest and per unseen config "
        "(each digest once); re-scan = catalog + tags lists + one HEAD per tag. It follows `Link` only.",
        "- Order within each scan: floor first, then ours, against the same registry; 1% of tags are moved "
        "(re-pointed to another manifest of the same repository with a PUT by tag) before the third pair.",
        "- Pages: queries per page in-process at two sizes; latency with 1 and "
        f"{meta['clients']} client threads against gunicorn.",
        f"- Total run time {meta.get('total_seconds', 0):.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def _plot_scans(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scans = results.get("scans", [])
    names = [s["name"] for s in scans]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.38
    xs = range(len(names))
    ours = [s["ours"]["seconds"] for s in scans]
    floor = [s["floor"]["seconds"] for s in scans]
    left.bar([x - width / 2 for x in xs], ours, width, label="ours (scan_job_run)", color="#3b6ea8")
    left.bar([x + width / 2 for x in xs], floor, width, label="floor (plain requests)", color="#9aa5b1")
    for x, (o, f) in enumerate(zip(ours, floor, strict=True)):
        left.text(x - width / 2, o, f"{o:.1f}s\n{o / f:.2f}x", ha="center", va="bottom", fontsize=8)
        left.text(x + width / 2, f, f"{f:.1f}s", ha="center", va="bottom", fontsize=8)
    left.set_xticks(list(xs), names)
    left.set_ylabel("wall time (s)")
    left.set_title("Scan wall time")
    left.legend()
    kinds = sorted({k for s in scans for side in ("ours", "floor") for k in s[side]["requests"]})
    labels, bottoms = [], []
    for s in scans:
        labels += [f"{s['name']}\nours", f"{s['name']}\nfloor"]
    bottoms = [0] * len(labels)
    colors = ["#3b6ea8", "#e39b3b", "#5aa469", "#c44e52", "#8172b2", "#937860", "#da8bc3"]
    for i, kind in enumerate(kinds):
        values = []
        for s in scans:
            values += [s["ours"]["requests"].get(kind, 0), s["floor"]["requests"].get(kind, 0)]
        right.bar(range(len(labels)), values, bottom=bottoms, label=kind, color=colors[i % len(colors)])
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    right.set_xticks(range(len(labels)), labels, fontsize=8)
    right.set_ylabel("requests")
    right.set_title("Requests by kind")
    right.legend(fontsize=8)
    meta = results["meta"]
    fig.suptitle(f"{results['generation']['plan']['tags']:,} tags, {meta['repos']}x{meta['tags']}+{meta['big_tags']}, "
                 f"seed {meta['seed']}, concurrency {meta['concurrency']}, {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_pages(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load = results["pages"]["load"]
    labels = [f"{item['label'].replace(', ', chr(10))}\n{item['clients']} client{'s' if item['clients'] > 1 else ''}"
              for item in load]
    fig, ax = plt.subplots(figsize=(max(8, len(load) * 1.3), 5))
    width = 0.38
    xs = range(len(load))
    ax.bar([x - width / 2 for x in xs], [i["p50_ms"] for i in load], width, label="p50", color="#3b6ea8")
    ax.bar([x + width / 2 for x in xs], [i["p95_ms"] for i in load], width, label="p95", color="#e39b3b")
    ax.axhline(P95_TARGET_MS, color="#c44e52", linestyle="--", linewidth=1, label=f"p95 target {P95_TARGET_MS:.0f} ms")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Page latency, gunicorn -w {results['pages']['workers']}, "
                 f"{results['generation']['plan']['tags']:,} tags")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets_evaluate(results)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results))
    if results.get("scans"):
        _plot_scans(results, out / "scan.png")
    if results.get("pages"):
        _plot_pages(results, out / "pages.png")
