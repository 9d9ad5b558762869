"""Warehouse benchmark: reference warehouses of growing size in DuckDB, the three warehouse profiles run
against each by `vigie run` in its own process; wall time, CPU time and the process's peak memory.

    python benchmarks/warehouse.py --persons 10000 100000 1000000 --work /tmp/vigie-bench

Rows grow linearly with persons (about 22 per person). Time should grow close to linearly with rows (every
rule is a scan, an aggregate or a hash join in the engine); the vigie process's memory should stay flat,
since no row comes back to Python (only counts and samples of at most 20). DuckDB runs inside the vigie
process: its buffer pool is part of that memory, capped by the session (see vigie.warehouse.session).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROFILES = ["omop-cdm-5.4", "omop-dq", "eds-privacy"]


def rows_of(url: str) -> int:
    import duckdb
    con = duckdb.connect(url.split(":///", 1)[1], read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()]
        return sum(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables)
    finally:
        con.close()


def build(db: Path, persons: int, seed: int) -> str:
    """Builds in a child process: a parent grown by the build would lend its pages to the next child's
    peak RSS (a forked child counts the parent's resident pages until it executes)."""
    url = f"duckdb:///{db}"
    subprocess.run([sys.executable, "-m", "vigie", "reference", "warehouse", url, "--persons", str(persons),
                    "--seed", str(seed)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return url


def measure(url: str, out: Path) -> dict:
    """One `vigie run` in a child process: wall time, CPU time and peak RSS of that process (wait4)."""
    args = [sys.executable, "-m", "vigie", "run", "--warehouse", url, "--out", str(out),
            "--check-timeout", "3600", "--run-timeout", "7200"]
    for p in PROFILES:
        args += ["--profile", p]
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    report = json.loads((out / "report.json").read_text())
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024), "exit": os.waitstatus_to_exitcode(status),
            "verdict": report["verdict"],
            "checks_s": round(sum(o["duration_s"] for o in report["outcomes"]), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/vigie-bench"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
    print("| persons | rows | build s | run wall s | run CPU s | checks s | peak RSS MiB | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.persons:
        db = args.work / f"reference-{n}.duckdb"
        started = time.monotonic()
        url = build(db, n, args.seed)
        built = time.monotonic() - started
        out = args.work / f"bundle-{n}"
        if out.exists():
            import shutil
            shutil.rmtree(out)
        m = measure(url, out)
        rows = rows_of(url)   # after the run: the parent stays small while the child is measured
        print(f"| {n:,} | {rows:,} | {built:.1f} | {m['wall_s']} | {m['cpu_s']} | {m['checks_s']} | "
              f"{m['peak_rss_mib']} | {m['verdict']} |", flush=True)
        db.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
