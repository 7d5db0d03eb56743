"""Where a command's CPU goes, by kind of process: run a command (e.g. a tiny study) and sample every process on
the machine twice a second, adding each one's CPU time since the last sample to its current kind (the study's
driver, Ray's daemons, Ray workers by the task or actor they run, an MLflow server, ...).

Why a sampler of our own: Ray's daemons and workers are not children the command waits for, so the shell's
``time`` misses them, and bench/utilisation.py counts only trials. Example (issue 24, bench/README.md,
"Test-suite time"): ``python bench/process_cpu.py --out results/process_cpu_tiny_study.json -- python STUDY.py``
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil


def kind(p: psutil.Process) -> str:
    """What a process is, from its command line (a Ray worker is named after the task or actor it runs)."""
    try:
        cmd = " ".join(p.cmdline())[:400]
    except (psutil.Error, OSError):
        return "gone"
    m = re.search(r"ray::(\S+)", cmd)
    if m or "default_worker.py" in cmd:
        return "ray worker: " + (m.group(1) if m else "starting")
    for name, needle in (("ray raylet", "raylet"), ("ray gcs", "gcs_server"), ("ray agents", "agent"),
                         ("ray monitors", "monitor"), ("mlflow server", "mlflow server")):
        if needle in cmd:
            return name
    return "other: " + p.name()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="JSON of the totals (default: print only)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command given (put it after --)")
    start = time.time()
    seen: dict[tuple[int, float], float] = {}
    by_kind: Counter[str] = Counter()
    busy0 = psutil.cpu_times()
    proc = subprocess.Popen(cmd)
    driver = proc.pid
    while proc.poll() is None:
        for p in psutil.process_iter():
            try:
                t = p.cpu_times()
                key = (p.pid, p.create_time())
            except (psutil.Error, OSError):
                continue
            total = t.user + t.system
            before = seen.get(key, total if key[1] < start else 0.0)  # older processes: from now on
            seen[key] = total
            k = "driver (the command)" if p.pid == driver else kind(p)
            by_kind[k] += total - before
        time.sleep(a.interval)
    wall = time.time() - start
    busy1 = psutil.cpu_times()
    machine = sum(getattr(busy1, f) - getattr(busy0, f) for f in ("user", "nice", "system"))
    result = {
        "command": cmd, "returncode": proc.returncode, "wall_s": round(wall, 1), "cores": psutil.cpu_count(),
        "machine_busy_core_s": round(machine, 1),
        "cpu_s_by_kind": {k: round(v, 1) for k, v in by_kind.most_common() if v >= 0.05},
    }
    print(json.dumps(result, indent=1), file=sys.stderr)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
