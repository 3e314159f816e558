"""bin/bench: runs the parts the options ask for and writes the results
(see harness/bench/__init__.py for what each measures)."""

import argparse
import json
import pathlib
import subprocess
import time

from harness import ROOT
from harness.bench import CONNECTIONS, Bench, baseline, converge, load, takeover
from harness.lab import Lab


def check(data):
    """What must not happen, whatever the figures: bad answers under load, a
    takeover that never came, a no-change converge that changed something."""
    problems = [f"{r['page']}, {r['how']}: {r['bad_answers']} bad answers"
                for r in data.get("throughput", []) if r["bad_answers"]]
    problems += [f"{r['fault']}: the other balancer never answered" for r in data.get("takeover", [])
                 if r["takeover_s"] is None]
    problems += [f"{r['fault']}: {r['failed_after_takeover']} requests failed after the other balancer answered"
                 for r in data.get("takeover", []) if r.get("failed_after_takeover")]
    converge = data.get("converge")
    if converge:
        problems += [f"a no-change converge changed {r['changed']} things" for r in converge["no_change_runs"]
                     if r["changed"]]
    return problems


def markdown(data):
    lines = [f"# Bench of the {data['lab']} lab", "",
             f"{data['date']}, on {data['machine']}; {data['mode']} mode: medians of {data['runs']} runs of "
             f"{data['duration_s']} s each, {CONNECTIONS} connections, runs of every case interleaved.", ""]
    if data.get("throughput"):
        lines += ["| page | how | requests/s | mean latency (ms) | bad answers |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['page']} | {r['how']} | {r['rps']} | {r['latency_ms']} | {r['bad_answers']} |" for r in data["throughput"]]
        lines.append("")
    if data.get("converge"):
        c = data["converge"]
        first = c["first_converge"]
        lines += ["| converge | seconds |", "| --- | ---: |",
                  f"| first (the last bin/lab that built the stack: {first['changed']} changes on {first['hosts']} hosts) "
                  f"| {first['seconds']} |" if first else "| first | not recorded (run ./bin/lab on fresh containers) |",
                  f"| no change ({c['hosts']} hosts, median of {len(c['no_change_runs'])}) | {c['no_change_s']} |",
                  f"| floor: one apt-get install per host of the same {c['floor']['packages']} packages, "
                  f"{c['floor']['hosts']} fresh containers at once | {c['floor']['seconds']} |", ""]
    if data.get("promote"):
        p = data["promote"]
        lines += ["| primary database lost (drill: " + p["source"] + ", " + p["date"] + ") | seconds |", "| --- | ---: |",
                  f"| a write meanwhile: answered with the read-only page in | {p['refused_in_s']} |",
                  f"| db_promote.yml run | {p['db_promote_s']} |",
                  f"| primary lost to writes accepted | {p['writes_restored_s']} |",
                  f"| reads failed meanwhile | {p['reads_failed']} of {p['reads_sent']} |", ""]
    if data.get("takeover"):
        lines += ["| VIP takeover after | median (s) | runs (s) | requests lost per run |", "| --- | ---: | --- | --- |"]
        lines += [f"| {r['fault']} | {r['takeover_s']} | {r['runs']} | {r['requests_lost']} |" for r in data["takeover"]]
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(prog="bin/bench", description="What the running lab delivers, measured.")
    parser.add_argument("--short", action="store_true", help="a few seconds per figure (CI), not the full figures")
    parser.add_argument("--only", choices=["throughput", "takeover", "promote", "converge"], action="append",
                        help="measure only this (repeatable)")
    parser.add_argument("--runs", type=int, help="runs per throughput case (default 5, short 1)")
    parser.add_argument("--seconds", type=int, help="seconds per throughput run (default 10, short 1)")
    parser.add_argument("--keep-baseline", action="store_true", help="leave the baseline container for the next run")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench"))
    args = parser.parse_args()
    lab = Lab()
    problem = lab.why_not_running()
    if problem:
        raise SystemExit(problem)
    bench = Bench(lab, args.short, args.runs, args.seconds)
    started = time.monotonic()
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem = round(int(pathlib.Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024)
    data = {"lab": lab.name, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{cpu} CPUs, {mem} GiB, everything on one machine", "mode": "short" if args.short else "full",
            "runs": bench.runs, "duration_s": bench.duration}
    only = args.only or ["throughput", "takeover", "promote", "converge"]
    try:
        load.ensure_tools(bench)
        if "throughput" in only:
            data["throughput"] = load.throughput(bench)
        if "takeover" in only:
            data["takeover"] = takeover.takeover(bench)
        if "promote" in only:
            data["promote"] = converge.promote(bench)
        if "converge" in only:
            data["converge"] = converge.converge(bench)
    finally:
        if not args.keep_baseline:
            baseline.remove()
    data["seconds"] = round(time.monotonic() - started, 1)
    problems = check(data)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=2))
    (out / "results.md").write_text(markdown(data))
    print(markdown(data))
    print(f"({data['seconds']} s; {out}/results.json, results.md)")
    if problems:
        raise SystemExit("the bench measured what must not happen:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
