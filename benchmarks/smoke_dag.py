"""Wall time of the whole smoke-size DAG, from nothing to ``results/table1.csv`` (target: 5 minutes on 2 cores).

Runs Snakemake on the smoke profile (``config.yaml`` + ``workflow/configs/smoke.yaml``) in a fresh scratch
working directory, as ``tests/test_workflow.py::test_smoke_dag_to_table1`` does, and prints:

* the wall seconds of the Snakemake command and the number of jobs;
* per rule: jobs and the seconds they ran (from the ``[timestamp]`` lines of Snakemake's log, 1-s resolution);
* core-seconds used and idle (a job runs on one core here, so ``cores`` x wall - busy is what the schedule left).

Most of a smoke job is Python importing torch, transformers and diffusers (~6-8 s per process on this machine),
which is why Table 1's methods share one generation and one scoring job per dataset.

    python benchmarks/smoke_dag.py [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]")


def job_spans(log: str) -> list[tuple[str, int, int]]:
    """(rule, start, end) in seconds from the first job, from a Snakemake log."""
    now, current, started, spans = None, None, {}, []
    for line in log.splitlines():
        m = STAMP.match(line)
        if m:
            now = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"(?:local)?rule (\w+):", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"\s+jobid: (\d+)", line)
        if m and current:
            started[m.group(1)] = (current, now)
            current = None
            continue
        m = re.match(r"Finished jobid: (\d+)", line)
        if m and m.group(1) in started:
            rule, start = started.pop(m.group(1))
            spans.append((rule, start, now))
    if not spans:
        return []
    t0 = min(s for _, s, _ in spans)
    return [(rule, int((s - t0).total_seconds()), int((e - t0).total_seconds())) for rule, s, e in spans]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", help="working directory to use and keep (default: a temporary one)")
    args = parser.parse_args()

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="smoke-dag-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "snakemake"), "results/table1.csv", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--cores", str(args.cores), "--configfile", str(ROOT / "config.yaml"),
           str(ROOT / "workflow/configs/smoke.yaml")]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    try:
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return out.returncode
        spans = job_spans(out.stderr + out.stdout)
        per_rule = defaultdict(lambda: [0, 0])
        for rule, start, end in spans:
            per_rule[rule][0] += 1
            per_rule[rule][1] += end - start
        busy = sum(end - start for _, start, end in spans)
        span = max(end for _, _, end in spans)
        print(f"smoke DAG to results/table1.csv: {wall:.0f} s wall, {len(spans)} jobs, {args.cores} cores")
        print(f"{'rule':<20} {'jobs':>4} {'seconds':>8}")
        for rule, (n, seconds) in sorted(per_rule.items(), key=lambda kv: -kv[1][1]):
            print(f"{rule:<20} {n:>4} {seconds:>8}")
        print(f"jobs ran {busy} core-seconds over {span} s; idle {args.cores * span - busy} core-seconds; "
              f"Snakemake outside the jobs {wall - span:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
