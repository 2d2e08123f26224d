"""Training throughput alone and beside one busy process, per thread policy (docs/BENCHMARKS.md).

For each policy and condition, a short ``edgedistill train`` (SEED, an ONNX teacher run by onnxruntime in the
same process as torch: both pools) and its images/s over the last logged windows. The competitor is one
pure-Python busy loop started with ``setsid`` (a session of its own, as another user's job is, so ``nice``
cannot hold it back); it runs only while its condition is measured.

Policies:
* ``legacy``: the pools as they were before distill.core.threads: libgomp's default wait (spin, then sleep)
  and onnxruntime's intra-op spinning;
* ``default``: what ``edgedistill`` does now (distill.core.threads): pools sized to the usable CPUs, its wait
  policy, no onnxruntime spinning;
* ``passive``, ``short-spin`` and ``shorter-spin``: the OpenMP wait policies it was chosen from
  (``OMP_WAIT_POLICY=PASSIVE``; libgomp's default wait with ``GOMP_SPINCOUNT`` 10000 or 1000, the one chosen),
  all without onnxruntime spinning.

  python -m tools.contention --data C/train --teacher T.onnx --doc docs/BENCHMARKS.md
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distill.core.atomic import atomic_write_json, write_between_markers
from distill.core.cli import script, tool_parser

POLICIES = {"legacy": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "300000", "KMP_BLOCKTIME": "200",
                       "EDGEDISTILL_ORT_SPINNING": "1"},  # libgomp's and Intel's defaults
            "default": {},
            "passive": {"OMP_WAIT_POLICY": "PASSIVE"},  # OpenMP threads sleep at once
            "short-spin": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"},  # libgomp: spin briefly, then sleep
            "shorter-spin": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "1000"}}


def train_speed(args, env_extra: dict, out: Path) -> float:
    """images/s of the last two logged windows of a short training run."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(env_extra, EDGEDISTILL_PROGRESS="0")
    cmd = [sys.executable, "-m", "distill", "train", "--data", args.data, "--teacher", args.teacher,
           "--limit", "5000", "--batch-size", "128", "--lr", "0.1", "--queue-size", "4096", "--in-memory", "on",
           "--max-steps", str(args.steps), "--log-every", "10", "--workers", "0", "--out", str(out)]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=args.timeout)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "images_per_s" in r][-2:]
    return sum(r["images_per_s"] for r in rows) / len(rows)


@script("python -m tools.contention")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.contention", __doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--timeout", type=int, default=900, help="seconds per run")
    p.add_argument("--policies", default="legacy,default", help=f"comma-separated, of {', '.join(POLICIES)}")
    p.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both")
    p.add_argument("--repeats", type=int, default=1, help="runs per policy and condition, interleaved; medians")
    p.add_argument("--out", default="runs/contention.json")
    p.add_argument("--doc", help="markdown file whose 'contention' section is rewritten")
    args = p.parse_args(argv)
    policies = {name: POLICIES[name] for name in args.policies.split(",")}
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgedistill-contention-") as tmp:
        for condition in args.conditions.split(","):
            busy = None
            if condition == "busy":
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                time.sleep(1)
            try:
                for _ in range(args.repeats):  # A B C A B C: the machine's slow windows hit every policy alike
                    for policy, env in policies.items():
                        run = Path(tmp) / f"{policy}-{condition}"
                        speed = train_speed(args, env, run)
                        results.setdefault((policy, condition), []).append(speed)
                        shutil.rmtree(run, ignore_errors=True)
                        print(f"{policy:10s} {condition:5s} {speed:7.1f} img/s", flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    load_after = os.getloadavg()
    results = {k: statistics.median(v) for k, v in results.items()}
    report = {"rows": [{"policy": k[0], "condition": k[1], "images_per_s": round(v, 1)} for k, v in results.items()],
              "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(), "steps": args.steps}
    atomic_write_json(args.out, report)
    if args.doc:
        lines = [f"Machine: {os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
                 "(the busy loop ran only during the busy rows). Each figure: images/s over the last 20 of "
                 f"{args.steps} steps (batch 128, SEED, ONNX teacher), median of {args.repeats} interleaved run(s).",
                 "",
                 "| thread policy | alone | beside one busy process | kept |", "|---|---:|---:|---:|"]
        for policy in policies:
            quiet, busy = results.get((policy, "quiet")), results.get((policy, "busy"))
            fmt = lambda v: f"{v:.0f}" if v is not None else "-"  # noqa: E731
            kept = f"{100 * busy / quiet:.0f} %" if quiet and busy else "-"
            lines.append(f"| {policy} | {fmt(quiet)} | {fmt(busy)} | {kept} |")
        lines += ["", f"Command: `python -m tools.contention --data {args.data} --teacher {args.teacher} "
                      f"--steps {args.steps} --policies {args.policies} --conditions {args.conditions} --repeats {args.repeats} "
                      f"--doc {args.doc}`", ""]
        write_between_markers(Path(args.doc), "contention", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
