#!/usr/bin/env python3
"""Turns the raw files run.sh collected into the markdown tables of bench-results/e2e-*.md.

Usage: report.py WORKDIR CLK_TCK   (reads WORKDIR/results.tsv, WORKDIR/mem.tsv, WORKDIR/wrk/*.txt)
"""
import os
import re
import sys

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
SIZE = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}
SCENARIOS = [
    ("c64", "GET / (12-byte body), 64 connections"),
    ("c256", "GET / (12-byte body), 256 connections"),
    ("big", "GET /1m (1 MiB body)"),
]


def parse_wrk(path):
    text = open(path).read()
    out = {"requests": 0, "rps": 0.0, "p50": None, "p99": None, "bytes_s": 0.0, "errors": ""}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+" + pct + r"%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            out[key] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB|TB)", text)
    if m:
        out["bytes_s"] = float(m.group(1)) * SIZE[m.group(2)]
    errs = []
    m = re.search(r"Socket errors: (.*)", text)
    if m:
        errs.append("socket " + m.group(1).strip())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errs.append("non-2xx " + m.group(1))
    out["errors"] = "; ".join(errs)
    return out


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}"


def main():
    work, clk_tck = sys.argv[1], int(sys.argv[2])
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(work, "results.tsv")) if line.strip()]
    targets = []
    data = {}  # (scenario, target) -> list of (round, wrk dict, ticks)
    allocs = {}  # (scenario, target) -> list of (round, bytes allocated, requests): router targets only
    for row in rows:
        rnd, scenario, target, ticks, wrkfile = row[:5]
        if target not in targets:
            targets.append(target)
        wrk = parse_wrk(wrkfile)
        data.setdefault((scenario, target), []).append((int(rnd), wrk, int(ticks)))
        if len(row) > 5 and row[5] not in ("", "-"):
            steady = (int(row[6]), int(row[7])) if len(row) > 7 and row[6] not in ("", "-") else (None, None)
            allocs.setdefault((scenario, target), []).append((int(rnd), int(row[5]), wrk["requests"]) + steady)
    rounds = sorted({int(r[0]) for r in rows})

    def summary(scenario, target):
        runs = data.get((scenario, target), [])
        if not runs:
            return None
        n = len(runs)
        req = sum(w["requests"] for _, w, _ in runs)
        ticks = sum(t for _, _, t in runs)
        p50s = [w["p50"] for _, w, _ in runs if w["p50"] is not None]
        p99s = [w["p99"] for _, w, _ in runs if w["p99"] is not None]
        return {
            "rps": sum(w["rps"] for _, w, _ in runs) / n,
            "p50": sum(p50s) / len(p50s) if p50s else None,
            "p99": sum(p99s) / len(p99s) if p99s else None,
            "mib_s": sum(w["bytes_s"] for _, w, _ in runs) / n / 1024 ** 2,
            "cpu_us": ticks * 1e6 / clk_tck / req if req else None,
            "per_round": {r: w for r, w, _ in runs},
            "ticks": ticks,
            "requests": req,
            "errors": " / ".join(w["errors"] for _, w, _ in runs if w["errors"]),
        }

    out = []
    for scenario, title in SCENARIOS:
        if not any((scenario, t) in data for t in targets):
            continue
        sums = {t: summary(scenario, t) for t in targets}
        ref = sums.get("nginx")
        yarp = sums.get("yarp")
        out.append(f"### {title}\n")
        round_cols = " | ".join(f"rps r{r}" for r in rounds)
        big = scenario == "big"
        extra = " MiB/s |" if big else ""
        out.append(f"| target | {round_cols} | rps (mean) |{extra} p50 ms | p99 ms | CPU ticks | requests | CPU µs/req "
                   f"| rps ÷ nginx | p99 ÷ nginx | CPU/req ÷ nginx | rps ÷ yarp | wrk errors |")
        out.append("|" + "---|" * (12 + len(rounds) + (1 if big else 0)))
        for t in targets:
            s = sums[t]
            if s is None:
                continue
            per_round = " | ".join(fmt(s["per_round"][r]["rps"], 0) if r in s["per_round"] else "n/a" for r in rounds)
            mib = f" {fmt(s['mib_s'])} |" if big else ""
            out.append(
                f"| {t} | {per_round} | {fmt(s['rps'], 0)} |{mib} {fmt(s['p50'], 2)} | {fmt(s['p99'], 2)} "
                f"| {s['ticks']} | {s['requests']:,} | {fmt(s['cpu_us'], 1)} "
                f"| {ratio(s['rps'], ref and ref['rps'])} | {ratio(s['p99'], ref and ref['p99'])} "
                f"| {ratio(s['cpu_us'], ref and ref['cpu_us'])} | {ratio(s['rps'], yarp and yarp['rps'])} | {s['errors'] or '-'} |")
        out.append("")

    if allocs:
        out.append("### Managed allocation per request (router targets, from `dotnet_gc_allocated_bytes_total`)\n")
        out.append("| scenario | target | round | whole run: requests | bytes | bytes/request "
                   "| steady state: requests | bytes | bytes/request |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for scenario, _ in SCENARIOS:
            for t in targets:
                for rnd, allocated, requests, s_bytes, s_requests in allocs.get((scenario, t), []):
                    per = allocated / requests if requests else None
                    s_per = s_bytes / s_requests if s_requests else None
                    s_cols = (f"{s_requests:,} | {s_bytes:,} | {fmt(s_per, 3)}" if s_requests is not None else "n/a | n/a | n/a")
                    out.append(f"| {scenario} | {t} | {rnd} | {requests:,} | {allocated:,} | {fmt(per, 3)} | {s_cols} |")
        out.append("")

    mem_path = os.path.join(work, "mem.tsv")
    if os.path.exists(mem_path):
        mem = [line.rstrip("\n").split("\t") for line in open(mem_path) if line.strip()]
        out.append("### Resident memory (VmRSS, summed over all the target's processes)\n")
        out.append("| phase | target | RSS at start MiB | RSS before MiB | RSS with N idle keep-alive conns MiB "
                   "| N (answered) | KB per idle conn | per conn ÷ nginx |")
        out.append("|---|---|---|---|---|---|---|---|")
        per_conn = {}
        for phase, target, fresh, before, after, ok, count in mem:
            per_conn[(phase, target)] = (int(after) - int(before)) / int(count) if int(count) else None
        for phase, target, fresh, before, after, ok, count in mem:
            pc = per_conn[(phase, target)]
            ref = per_conn.get((phase, "nginx"))
            out.append(f"| {phase} | {target} | {int(fresh) / 1024:.1f} | {int(before) / 1024:.1f} | {int(after) / 1024:.1f} "
                       f"| {count} ({ok}) | {fmt(pc, 2)} | {ratio(pc, ref)} |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
