"""results.json, results.md (tables and the goals' verdicts), scan.png, tools.png and pages.png."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .goals import (
    MIB_MB,
    P95_TARGET_MS,
    goals_evaluate,
    kinds_text,
    ratio,
    spread,
    tool_medians,
)
from .memory import SAMPLE_SECONDS


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _header_section(results: dict) -> list[str]:
    """The run, the machine, the generated registry and the goals table."""
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
        + (f" at the start, {meta['commit_at_end']} at the end" if meta.get("commit_at_end")
           and meta["commit_at_end"] != machine["commit"] else "")
        + f"; load average at start {machine['loadavg_at_start']}"
        + (f", at the end {meta['loadavg_at_end']}" if meta.get("loadavg_at_end") else "") + ". "
        "The machine is shared: other work ran meanwhile, so times are noisy (each run's load average is "
        "shown); request counts are exact.",
        "",
        f"Seed {meta['seed']}: {meta['repos']} repositories x {meta['tags']} tags + 1 repository of "
        f"{meta['big_tags']} tags = **{plan['tags']:,} tags** in {plan['repositories']} repositories "
        f"({plan['mirrors']} mirrors of others), {plan['distinct_manifests']:,} distinct manifests "
        f"({kinds_text(plan['distinct_manifests_by_kind'])}), {plan['distinct_configs']:,} distinct configs. "
        f"Generated in {gen['push']['seconds']:.0f} s.",
        "",
        "## Goals",
        "",
        "| Goal | Measured | Met |",
        "|---|---|---|",
    ]
    for row in goals_evaluate(results):
        lines.append(f"| {row['goal']} | {row['measured']} | {_mark(row['ok'])} |")
    return lines


def _scans_section(results: dict) -> list[str]:
    """The scans table, after the note on pushes."""
    meta = results["meta"]
    lines: list[str] = []
    lines += [
        "",
        "Pushes are counted in tests, not here (counts do not depend on the machine): the seed push (two "
        "single-platform sources into a new repository, inventory scanned) costs 9 requests against a floor "
        "of 8, a 10-platform list with attestations 54 against 53 "
        "(`tests/manifests/test_push.py::test_the_seed_push_into_a_new_repository_costs_nine_registry_requests`, "
        "`::test_a_ten_platform_list_with_attestations_into_a_new_repository_is_within_a_tenth_of_the_floor`).",
        "",
        "## Scans",
        "",
        f"Ours: `scan_submit` as the Refresh button or `manage.py scan --wait` starts it, on one Celery worker "
        f"(`-c 1`) that fans out parts of up to 8 repositories (each written while the next is fetched); each "
        f"part runs {meta['concurrency']} requests at once "
        "(the registry's concurrency setting), as the floor does. Timed from `scan_submit` until the job row is "
        "done. CPU is the worker's (main and pool process); the floor's is this process's while it ran alone.",
        "",
        "| Scan | Ours (s) | Floor (s) | Ratio | Ours requests | Floor requests | Repeated digest GETs | "
        "CPU s: worker / floor | Registry CPU s: ours / floor | Worker peak RSS (MiB) | Load before | Tags correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scan in results.get("scans", []):
        ours, floor, check = scan["ours"], scan["floor"], scan["ours_check"]
        lines.append(
            f"| {scan['name']}{' (' + str(scan['moved']) + ' moved)' if 'moved' in scan else ''} "
            f"| {ours['seconds']:.2f} | {floor['seconds']:.2f} | {ratio(scan):.2f}x "
            f"| {ours['total']:,}: {kinds_text(ours['requests'])} | {floor['total']:,}: {kinds_text(floor['requests'])} "
            f"| {sum(scan['ours_log']['repeated_digest_gets'].values())} "
            f"| {ours['cpu_seconds']:.1f} / {floor['cpu_seconds']:.1f} "
            f"| {ours['registry_cpu_seconds']:.1f} / {floor['registry_cpu_seconds']:.1f} "
            f"| {', '.join(f'{p:.0f}' for p in ours['peak_rss_mib'])} | {scan['loadavg_before'][0]} "
            f"| {check['expected'] - check['wrong_or_missing']:,}/{check['expected']:,} |")
    lines += ["", _memory_note(results)]
    return lines


def _memory_note(results: dict) -> str:
    """Under the scans table: why the peak follows the largest repository, and where 100,000 tags were."""
    text = ("Memory: a part holds one repository's tags and what it fetched for them, and the worker keeps "
            "nothing between parts, so a worker's peak grows with the largest repository, not with the "
            f"registry (here the largest has {results['meta']['big_tags']:,} tags). ")
    memory = results.get("memory")
    if not memory:
        return text + "The memory phase at 100,000 tags did not run (`--skip-memory`)."
    if "error" in memory:
        return text + f"The memory phase failed: {memory['error'][-300:]}"
    plan = memory["generation"]["plan"]
    return text + (f"A registry of {plan['tags']:,} tags, whose largest repository has {memory['big_tags']:,}, "
                   f"was scanned cold by the same path: see Memory at {plan['tags']:,} tags below.")


def _memory_section(results: dict) -> list[str]:
    """The memory phase: its registry, the cold scan's peak, the resident set along the scan."""
    memory = results.get("memory")
    if not memory or "error" in memory:
        return []
    gen, scan, line = memory["generation"], memory["scan"], memory["scan"]["timeline"]
    plan, check, log = gen["plan"], memory["scan"]["ours_check"], memory["scan"]["ours_log"]
    peak = max(scan["peak_rss_mib"])
    return [
        "",
        f"## Memory at {plan['tags']:,} tags",
        "",
        f"Measured {memory['date']}" + (f" (`{memory['command']}`)" if memory.get("command") else "")
        + f", commit {memory['commit']}, load average {memory['loadavg_at_start']} at the "
        f"start and {memory.get('loadavg_at_end')} at the end. A registry of its own (Docker Distribution, on "
        f"{memory['folder_on']}): {gen['pushed_repositories'] - 1} repositories of {memory['repo_tags']} tags and "
        f"one of {memory['big_tags']:,} (the generator's content, seed {results['meta']['seed']}) pushed through "
        f"the API, {gen['pushed_tags']:,} tags in {gen['push_seconds']:.0f} s ({gen['push_requests']:,} requests); "
        f"then {gen['copied_repositories']:,} copies of the {memory['repo_tags']}-tag repositories under "
        "`archive/<k>/`, made in the registry's storage in "
        f"{gen['copy_seconds']:.0f} s (each the folder Distribution wrote for a pushed repository, link files "
        "naming digests, copied under another name: what pushing the same manifests and tags there writes, "
        "without one PUT per tag). In all **"
        f"{plan['tags']:,} tags in {plan['repositories']:,} repositories**, {plan['distinct_manifests']:,} "
        f"distinct manifests ({kinds_text(plan['distinct_manifests_by_kind'])}), {plan['distinct_configs']:,} "
        f"distinct configs; generated in {gen['seconds']:.0f} s.",
        "",
        "One cold scan on an empty SQLite database, as in the scans above: `scan_submit`, one Celery worker "
        f"(`-c 1`) fanning out parts of up to 8 repositories, each with {results['meta']['concurrency']} requests "
        "in flight. Peak: VmHWM of the worker's pool process after the scan; requests: the access log.",
        "",
        "| Tags | Repositories | Largest repository | Worker peak (MiB) | Seconds | Requests (access log) | "
        "Repeated digest GETs | CPU s: worker / registry | Load before | Tags correct |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {plan['tags']:,} | {plan['repositories']:,} | {memory['big_tags']:,} tags | {peak:.0f} "
        f"({peak * MIB_MB:.0f} MB) | {scan['seconds']:.0f} | {log['total']:,}: {kinds_text(log['requests'])} "
        f"| {sum(log['repeated_digest_gets'].values())} | {scan['cpu_seconds']:.0f} / "
        f"{scan['registry_cpu_seconds']:.0f} | {scan['loadavg_before']} "
        f"| {check['expected'] - check['wrong_or_missing']:,}/{check['expected']:,} |",
        "",
        f"The pool process's resident set (VmRSS), sampled every {SAMPLE_SECONDS} s beside the parts done "
        f"({line['samples']} samples): the copies are scanned first (`archive/` sorts first), then the "
        f"{memory['big_tags']:,}-tag repository, then the pushed ones. {_mib(line['copies_tenth_mib'])} after a "
        f"tenth of the {gen['copied_repositories']:,} copies, {_mib(line['copies_end_mib'])} at their end (highest "
        f"{_mib(line['copies_max_mib'])}), up to {_mib(line['big_max_mib'])} during the largest repository's "
        f"part, {_mib(line['max_mib'])} at the highest sample.",
    ]


def _mib(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} MiB"


def _tools_section(results: dict) -> list[str]:
    """Ours and the floor beside the CLI tools, for every tag."""
    meta = results["meta"]
    lines: list[str] = []
    tools = tool_medians(results)
    if tools:
        cold = [s for s in results.get("scans", []) if s["kind"] == "cold"]
        warm = [s for s in results.get("scans", []) if s["kind"] == "warm"]
        total = results["tools"]["total_tags"]
        lines += [
            "",
            "## Against what people use instead",
            "",
            f"Time and registry requests to know every tag's platforms, {total:,} tags, "
            f"{results['tools']['concurrency']} at a time. The CLIs run one process per tag (docker "
            "`manifest inspect --insecure`, and `--verbose` again for a single image, whose manifest names no "
            "platform; skopeo `inspect --raw`, and `--raw --config` for a single image), over a random sample of "
            f"{results['tools']['sample']} tags, {meta['repeat']} time(s); their cost per tag does not depend on the other "
            "tags (no cache between processes), so the figure for every tag is the sample's times "
            f"{total / results['tools']['sample']:.1f}. Requests from the registry's access log.",
            "",
            "| Way | Time for every tag (s) | Requests for every tag | Per tag | Client CPU |",
            "|---|---|---|---|---|",
        ]
        for label, side, scans in (("ours, cold (fan-out, 1 worker)", "ours", cold), ("ours, warm", "ours", warm),
                                   ("floor, cold", "floor", cold), ("floor, warm", "floor", warm)):
            if scans:
                lines.append(f"| {label} | {spread([s[side]['seconds'] for s in scans], '', 1)} "
                             f"| {statistics.median(s[side]['total'] for s in scans):,.0f} "
                             f"| {1000 * statistics.median(s[side]['seconds'] for s in scans) / total:.1f} ms "
                             f"| {statistics.median(s[side]['cpu_seconds'] for s in scans):.1f} s |")
        for tool, entry in tools.items():
            if "error" in entry:
                lines.append(f"| `{tool}` | {entry['error']} | | | |")
                continue
            lines.append(f"| `{tool}` per tag | {entry['all_seconds']:,.0f} (sample: "
                         f"{spread(entry['seconds'], ' s', 1)}) | {entry['all_requests']:,} "
                         f"| {entry['per_tag_ms']:.0f} ms, {entry['requests_per_tag']:.2f} requests "
                         f"| {entry['cpu_per_tag_ms'] * total / 1000:,.0f} s ({entry['cpu_per_tag_ms']:.0f} ms a tag) |")
    return lines


def _scaleout_section(results: dict) -> list[str]:
    """The same scans with more workers on PostgreSQL."""
    lines: list[str] = []
    scale = results.get("scaleout")
    if scale and scale.get("runs"):
        lines += [
            "",
            "## Scale-out on PostgreSQL",
            "",
            "The same scan through `scan_submit` with 1, 2 and 4 Celery workers of `-c 1` each (one task at a "
            "time, each with the registry's concurrency), one fresh PostgreSQL database per worker count, on the "
            "same 2 cores as the registry, PostgreSQL, Redis and this process. One run each. "
            "Share of the 2 cores = (workers' + registry's CPU) / (2 x wall time).",
            "",
            "| Scan | Seconds | Speed-up | Requests | CPU s: workers / registry | Share of 2 cores | "
            "Peak RSS per worker (MiB) | Load before | Tags correct |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        base = {r["kind"]: r["seconds"] for r in scale["runs"] if r["workers"] == 1}
        for run in scale["runs"]:
            check = run["ours_check"]
            share = (run["cpu_seconds"] + run["registry_cpu_seconds"]) / (2 * run["seconds"])
            lines.append(f"| {run['name']} | {run['seconds']:.2f} | {base.get(run['kind'], 0) / run['seconds']:.2f}x "
                         f"| {sum(run['requests'].values()):,} | {run['cpu_seconds']:.1f} / "
                         f"{run['registry_cpu_seconds']:.1f} | {100 * share:.0f}% "
                         f"| {', '.join(f'{p:.0f}' for p in run['peak_rss_mib'])} | {run['loadavg_before']} "
                         f"| {check['expected'] - check['wrong_or_missing']:,}/{check['expected']:,} |")
    return lines


def _pages_section(results: dict) -> list[str]:
    """Latency and queries per page of the scanned registry."""
    meta = results["meta"]
    plan = results["generation"]["plan"]
    lines: list[str] = []
    pages = results.get("pages")
    if pages:
        lines += [
            "",
            f"## Pages of the scanned registry ({plan['tags']:,} tags, SQLite)",
            "",
            f"gunicorn `config.wsgi -w {pages['workers']}`, {meta['clients']} client threads, logged in.",
            "",
            "| Page | Path | Clients | Requests | p50 (ms) | p95 (ms) | max (ms) | req/s | Load before |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for item in pages["load"]:
            lines.append(f"| {item['label']} | `{item['path']}` | {item['clients']} | {item['requests']} "
                         f"| {item['p50_ms']:.0f} | {item['p95_ms']:.0f} | {item['max_ms']:.0f} "
                         f"| {item['throughput_rps']:.1f} | {item['loadavg_before']} |")
        lines += ["", "| Page | Size | SQL queries | Status |", "|---|---|---|---|"]
        for item in pages["queries"]:
            lines.append(f"| {item['page']} | {item['size']} | {item['queries']} | {item['status']} |")
    return lines


def _synthetic_section(results: dict) -> list[str]:
    """Latency and queries per page of the synthetic inventories."""
    meta = results["meta"]
    lines: list[str] = []
    synthetic = results.get("synthetic")
    if synthetic:
        lines += [
            "",
            f"## Pages at {synthetic['repos'] * synthetic['tags']:,} tags in {synthetic['repos']:,} repositories",
            "",
            "A synthetic inventory from the same generator, written straight to the database through the scan's "
            "own writers (`python -m bench.inproc inventory`), on SQLite and on PostgreSQL; gunicorn `-w 2`, "
            f"{meta['clients']} client threads, logged in as a superuser.",
            "",
            "| Database | Page | Path | SQL queries | Requests | p50 (ms) | p95 (ms) | max (ms) | req/s | Load before |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for database in synthetic["databases"]:
            written = database["written"]
            extra = (f" (and a second registry of {written['second']['tags']:,} tags, a rule's two sources of "
                     f"{written['rule']['tags']:,} tags each)" if "second" in written else "")
            lines.append(f"| {database['database']} | *written* | {written['tags']:,} tags{extra}, "
                         f"{written['manifests']:,} manifests in {written['write_seconds']:.0f} s "
                         "| | | | | | | |")
            for item in database["load"]:
                lines.append(f"| {database['database']} | {item['label']} | `{item['path']}` | {item['queries']} "
                             f"| {item['requests']} | {item['p50_ms']:.0f} | {item['p95_ms']:.0f} | {item['max_ms']:.0f} "
                             f"| {item['throughput_rps']:.1f} | {item['loadavg_before']} |")
    return lines


def _method_section(results: dict) -> list[str]:
    """How this was measured."""
    meta = results["meta"]
    lines: list[str] = []
    lines += [
        "",
        "## How this was measured",
        "",
        "- `make bench` (`.venv/bin/python -m bench`; `--quick` for a small smoke run) starts Docker Distribution "
        "on a free loopback port with its access log on, a private Redis, Celery workers, a throwaway PostgreSQL "
        "cluster and gunicorn; everything runs on this machine.",
        "- Floor: bench/floor.py, plain `requests`, one session, the same number of threads; cold = catalog "
        "pages + tags lists + one GET per tag + one GET per unseen child manifest and per unseen config (each "
        "digest once, across repositories); re-scan = catalog + tags lists + one HEAD per tag.",
        "- Each scan: the floor first, then ours, against the same registry; cold runs each on a fresh SQLite "
        "file and a fresh worker; warm runs re-scan the last cold run's database. Medians of the per-run "
        "ratios, with the range.",
        "- Request counts: the client's counters summed over the parts (`Job.result['requests']`), and the "
        "registry's access log between two marks, by user agent (repeated digest GETs come from the log).",
        f"- Total run time {meta.get('total_seconds', 0):.0f} s.",
    ]
    return lines


def markdown(results: dict) -> str:
    lines: list[str] = []
    for section in (_header_section, _scans_section, _memory_section, _tools_section, _scaleout_section, _pages_section,
                    _synthetic_section, _method_section):
        lines += section(results)
    return "\n".join(lines) + "\n"


def _plot_scans(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scans = results.get("scans", [])
    names = [s["name"] for s in scans]
    fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(names)), 5))
    width = 0.38
    xs = range(len(names))
    ours = [s["ours"]["seconds"] for s in scans]
    floor = [s["floor"]["seconds"] for s in scans]
    ax.bar([x - width / 2 for x in xs], ours, width, label="ours (Celery fan-out, 1 worker)", color="#3b6ea8")
    ax.bar([x + width / 2 for x in xs], floor, width, label="floor (plain requests)", color="#9aa5b1")
    for x, (o, f) in enumerate(zip(ours, floor, strict=True)):
        ax.text(x - width / 2, o, f"{o:.1f}s\n{o / f:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"Scans, {results['generation']['plan']['tags']:,} tags, concurrency {results['meta']['concurrency']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_tools(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cold = [s for s in results.get("scans", []) if s["kind"] == "cold"]
    warm = [s for s in results.get("scans", []) if s["kind"] == "warm"]
    bars: list[tuple[str, float, float]] = []
    for label, scans, side in (("ours cold", cold, "ours"), ("ours warm", warm, "ours"),
                               ("floor cold", cold, "floor"), ("floor warm", warm, "floor")):
        if scans:
            bars.append((label, statistics.median(s[side]["seconds"] for s in scans),
                         statistics.median(s[side]["total"] for s in scans)))
    for tool, entry in tool_medians(results).items():
        if "all_seconds" in entry:
            bars.append((tool.replace(" inspect", "\ninspect"), entry["all_seconds"], entry["all_requests"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    colors = ["#3b6ea8", "#6f9bd1", "#9aa5b1", "#c5ccd3", "#e39b3b", "#c44e52"]
    xs = range(len(bars))
    left.bar(xs, [b[1] for b in bars], color=colors[:len(bars)])
    left.set_yscale("log")
    left.set_xticks(list(xs), [b[0] for b in bars], fontsize=8)
    left.set_ylabel("seconds to know every tag's platforms (log)")
    for x, b in zip(xs, bars, strict=True):
        left.text(x, b[1], f"{b[1]:.0f}s", ha="center", va="bottom", fontsize=8)
    right.bar(xs, [b[2] for b in bars], color=colors[:len(bars)])
    right.set_xticks(list(xs), [b[0] for b in bars], fontsize=8)
    right.set_ylabel("registry requests")
    for x, b in zip(xs, bars, strict=True):
        right.text(x, b[2], f"{b[2]:,.0f}", ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{results['tools']['total_tags']:,} tags, {results['tools']['concurrency']} at a time "
                 f"(CLI tools: a sample of {results['tools']['sample']}, scaled)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_pages(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    databases = results["synthetic"]["databases"]
    labels = [item["label"] for item in databases[0]["load"]]
    fig, ax = plt.subplots(figsize=(max(9, len(labels) * 1.1), 5))
    width = 0.8 / len(databases)
    for i, database in enumerate(databases):
        ax.bar([x + (i - (len(databases) - 1) / 2) * width for x in range(len(labels))],
               [item["p95_ms"] for item in database["load"]], width, label=f"p95, {database['database']}")
    ax.axhline(P95_TARGET_MS, color="#c44e52", linestyle="--", linewidth=1, label=f"target {P95_TARGET_MS:.0f} ms")
    ax.set_xticks(range(len(labels)), [label.replace(", ", "\n") for label in labels], fontsize=7)
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Pages at {results['synthetic']['repos'] * results['synthetic']['tags']:,} tags, "
                 f"{results['meta']['clients']} clients, gunicorn -w 2")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results["goals"] = goals_evaluate(results)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results))
    if results.get("scans"):
        _plot_scans(results, out / "scan.png")
    if results.get("tools") and results["tools"].get("runs"):
        _plot_tools(results, out / "tools.png")
    if results.get("synthetic"):
        _plot_pages(results, out / "pages.png")
