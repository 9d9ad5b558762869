"""Warehouse benchmark: reference warehouses of growing size in DuckDB or PostgreSQL, warehouse profiles run
against each by `vigie run` in its own process; wall time, CPU time and the process's peak memory.

    python benchmarks/warehouse.py --persons 10000 100000 1000000 --work /tmp/vigie-bench
    python benchmarks/warehouse.py --engine postgresql --profile omop-dq --persons 100000 1000000

Rows grow linearly with persons (about 22 per person). Time should grow close to linearly with rows (every
rule is a scan, an aggregate or a hash join in the engine); the vigie process's memory should stay flat,
since no row comes back to Python (only counts and samples of at most 20). DuckDB runs inside the vigie
process: its buffer pool is part of that memory, capped by the session ([limits] engine_memory).

On PostgreSQL the reference warehouse is copied into a schema of its own (`vigie_bench_<persons>`, dropped
afterwards) with no index and no key constraint, as an EDS's raw tables often are, then ANALYZEd (the
planner's statistics, which any maintained database has): the query shapes must scale without indexes.
The server's time is not in the vigie process's CPU time: the wall time is what counts there.
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
POSTGRES = os.environ.get("VIGIE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def rows_of(url: str) -> int:
    if url.startswith("postgresql"):
        from vigie.fixtures.warehouse.postgres import connect

        from vigie.warehouse.url import option
        schema = option(url, "schema")
        with connect(POSTGRES) as con:
            tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                                "WHERE table_schema = %s", (schema,)).fetchall()]
            return sum(con.execute(f'SELECT COUNT(*) FROM "{schema}"."{t}"').fetchone()[0] for t in tables)
    import duckdb
    con = duckdb.connect(url.split(":///", 1)[1], read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()]
        return sum(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables)
    finally:
        con.close()


def build(engine: str, work: Path, persons: int, seed: int) -> str:
    """Builds in a child process: a parent grown by the build would lend its pages to the next child's
    peak RSS (a forked child counts the parent's resident pages until it executes). Returns the URL to test."""
    if engine == "duckdb":
        url = f"duckdb:///{work / f'reference-{persons}.duckdb'}"
    else:
        url = f"{POSTGRES}?schema=vigie_bench_{persons}"
    done = subprocess.run([sys.executable, "-m", "vigie", "reference", "warehouse", url, "--persons", str(persons),
                           "--seed", str(seed)], cwd=ROOT, check=True, capture_output=True, text=True)
    if engine == "duckdb":
        return url
    from vigie.fixtures.warehouse.postgres import connect
    schema = f"vigie_bench_{persons}"
    with connect(POSTGRES) as con:
        tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                             (schema,)).fetchall()
        con.execute("ANALYZE " + ", ".join(f"{schema}.{t[0]}" for t in tables))
    return next(w.strip("'") for w in done.stdout.split() if w.strip("'").startswith("postgresql://"))


def drop(engine: str, url: str, persons: int) -> None:
    if engine == "duckdb":
        Path(url.split(":///", 1)[1]).unlink()
    else:
        from vigie.fixtures.warehouse.postgres import drop as drop_schema
        drop_schema(POSTGRES, f"vigie_bench_{persons}")


def measure(url: str, out: Path, profiles: list[str], statement_timeout: float) -> dict:
    """One `vigie run` in a child process: wall time, CPU time and peak RSS of that process (wait4)."""
    config = out.parent / f"{out.name}.toml"
    config.write_text(f"[[targets]]\nkind = 'warehouse'\nurl = '{url}'\n\n[limits]\ncheck_timeout = 3600\n"
                      f"run_timeout = 7200\nstatement_timeout = {statement_timeout}\n")
    args = [sys.executable, "-m", "vigie", "run", "--config", str(config), "--out", str(out)]
    for p in profiles:
        args += ["--profile", p]
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    report = json.loads((out / "report.json").read_text())
    outcomes = report["outcomes"]
    slowest = max(outcomes, key=lambda o: o["duration_s"])
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024), "exit": os.waitstatus_to_exitcode(status),
            "verdict": report["verdict"], "errors": sum(o["status"] == "error" for o in outcomes),
            "checks_s": round(sum(o["duration_s"] for o in outcomes), 1),
            "slowest": f"{slowest['requirement']} {slowest['duration_s']:.1f} s"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("duckdb", "postgresql"), default="duckdb")
    parser.add_argument("--persons", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--profile", dest="profiles", action="append", choices=PROFILES,
                        help="profile to run (repeatable; default the three warehouse profiles)")
    parser.add_argument("--statement-timeout", type=float, default=600)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vigie-bench"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    profiles = args.profiles or PROFILES
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# {args.engine}, {' + '.join(profiles)}; {platform.machine()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| persons | rows | build s | run wall s | wall s per M rows | run CPU s | checks s | slowest | errors | "
          "peak RSS MiB | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.persons:
        started = time.monotonic()
        url = build(args.engine, args.work, n, args.seed)
        built = time.monotonic() - started
        out = args.work / f"bundle-{args.engine}-{n}"
        if out.exists():
            import shutil
            shutil.rmtree(out)
        try:
            m = measure(url, out, profiles, args.statement_timeout)
            rows = rows_of(url)   # after the run: the parent stays small while the child is measured
        finally:
            drop(args.engine, url, n)
        print(f"| {n:,} | {rows:,} | {built:.1f} | {m['wall_s']} | {m['wall_s'] / (rows / 1e6):.1f} | {m['cpu_s']} | "
              f"{m['checks_s']} | {m['slowest']} | "
              f"{m['errors']} | {m['peak_rss_mib']} | {m['verdict']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
