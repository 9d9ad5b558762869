"""Warehouse benchmark: reference warehouses of growing size in DuckDB, PostgreSQL or as Parquet tables read by
a local Spark session, warehouse profiles run against each by `vigie run` in its own process; wall time, CPU
time and peak memory.

    python benchmarks/warehouse.py --persons 10000 100000 1000000 --work /tmp/vigie-bench
    python benchmarks/warehouse.py --engine postgresql --profile omop-dq --persons 100000 1000000
    python benchmarks/warehouse.py --engine spark --persons 1000000

Rows grow linearly with persons (about 22 per person). Time should grow close to linearly with rows (every
rule is a scan, an aggregate or a hash join in the engine); the vigie process's memory should stay flat,
since no row comes back to Python (only counts and samples of at most 20). DuckDB runs inside the vigie
process: its buffer pool is part of that memory, capped by the session ([limits] engine_memory).

On PostgreSQL the reference warehouse is copied into a schema of its own (`vigie_bench_<persons>`, dropped
afterwards) with no index and no key constraint, as an EDS's raw tables often are, then ANALYZEd (the
planner's statistics, which any maintained database has): the query shapes must scale without indexes.
The server's time is not in the vigie process's CPU time: the wall time is what counts there.

On Spark the reference warehouse is written as Parquet (one folder per table, by the fixtures' own writer,
as the Spark tests read it) under the work folder and checked through `spark+local:///folder`. The local
session's JVM is a child process of `vigie run`, so two memory figures are given: the peak RSS of the vigie
process alone (wait4) and the peak of the summed RSS of its process tree (vigie, the JVM and any other
descendant), sampled from /proc every 0.2 s; the tree's CPU time is the vigie process's own (wait4) plus each
descendant's last sampled CPU time (a descendant that lives less than a sample is missed). For DuckDB and
PostgreSQL vigie has no child that matters: the tree's figures equal the process's (PostgreSQL's server is
not vigie's descendant).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROFILES = ["omop-cdm-5.4", "omop-dq", "eds-privacy"]
POSTGRES = os.environ.get("VIGIE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def rows_of(url: str) -> int:
    if url.startswith("spark+local"):
        import duckdb
        folder = Path(url.split(":///", 1)[1])
        con = duckdb.connect()
        try:
            return sum(con.execute(f"SELECT COUNT(*) FROM read_parquet('{t}/*.parquet')").fetchone()[0]
                       for t in sorted(folder.iterdir()) if t.is_dir())
        finally:
            con.close()
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
    elif engine == "spark":
        url = f"spark+local:///{work / f'reference-{persons}'}"
    else:
        url = f"{POSTGRES}?schema=vigie_bench_{persons}"
    done = subprocess.run([sys.executable, "-m", "vigie", "reference", "warehouse", url, "--persons", str(persons),
                           "--seed", str(seed)], cwd=ROOT, check=True, capture_output=True, text=True)
    if engine in ("duckdb", "spark"):
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
    elif engine == "spark":
        import shutil
        shutil.rmtree(url.split(":///", 1)[1])
    else:
        from vigie.fixtures.warehouse.postgres import drop as drop_schema
        drop_schema(POSTGRES, f"vigie_bench_{persons}")


def _tree(root: int) -> list[int]:
    """root's descendants (not root), from /proc/<pid>/task/<tid>/children (of every thread: the one that
    started a child is its parent there)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        children = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                children += [int(c) for c in (task / "children").read_text().split()]
            except OSError:   # gone between two reads
                continue
        found += children
        todo += children
    return found


def _rss_and_cpu(pid: int) -> tuple[int, float] | None:
    """(resident bytes, user + system CPU seconds) of one live process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()   # after the command name, which may hold spaces
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_pages * os.sysconf("SC_PAGE_SIZE"), (int(fields[11]) + int(fields[12])) / ticks


class TreeSampler(threading.Thread):
    """Samples a process tree every `every` s: the peak of its summed RSS, and each descendant's last CPU time."""

    def __init__(self, root: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.peak_rss = 0
        self.descendant_cpu: dict[int, float] = {}
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            total = 0
            for pid in [self.root, *_tree(self.root)]:
                seen = _rss_and_cpu(pid)
                if seen is None:
                    continue
                total += seen[0]
                if pid != self.root:
                    self.descendant_cpu[pid] = seen[1]
            self.peak_rss = max(self.peak_rss, total)
            self.stopped.wait(self.every)


def measure(url: str, out: Path, profiles: list[str], statement_timeout: float, engine_memory: str | None = None) -> dict:
    """One `vigie run` in a child process: wall time, CPU time and peak RSS of that process (wait4), and of its
    process tree (sampled: the JVM of a local Spark session is a child of vigie's)."""
    config = out.parent / f"{out.name}.toml"
    config.write_text(f"[[targets]]\nkind = 'warehouse'\nurl = '{url}'\n\n[limits]\ncheck_timeout = 3600\n"
                      f"run_timeout = 7200\nstatement_timeout = {statement_timeout}\n"
                      + (f"engine_memory = '{engine_memory}'\n" if engine_memory else ""))
    args = [sys.executable, "-m", "vigie", "run", "--config", str(config), "--out", str(out)]
    for p in profiles:
        args += ["--profile", p]
    started = time.monotonic()
    with open(out.parent / f"{out.name}.stderr", "wb") as stderr:   # Spark's JVM writes much there: not a pipe
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    sampler.stopped.set()
    sampler.join()
    report = json.loads((out / "report.json").read_text())
    outcomes = report["outcomes"]
    slowest = max(outcomes, key=lambda o: o["duration_s"])
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "tree_cpu_s": round(cpu + sum(sampler.descendant_cpu.values()), 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "tree_peak_rss_mib": round(max(sampler.peak_rss, usage.ru_maxrss * 1024) / 2 ** 20),
            "exit": os.waitstatus_to_exitcode(status),
            "verdict": report["verdict"], "errors": sum(o["status"] == "error" for o in outcomes),
            "checks_s": round(sum(o["duration_s"] for o in outcomes), 1),
            "slowest": f"{slowest['requirement']} {slowest['duration_s']:.1f} s"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("duckdb", "postgresql", "spark"), default="duckdb")
    parser.add_argument("--persons", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--profile", dest="profiles", action="append", choices=PROFILES,
                        help="profile to run (repeatable; default the three warehouse profiles)")
    parser.add_argument("--statement-timeout", type=float, default=600)
    parser.add_argument("--engine-memory", help="[limits] engine_memory of the run (DuckDB's buffer pool, e.g. 512M; "
                        "default vigie's)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vigie-bench"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    profiles = args.profiles or PROFILES
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# {args.engine}, {' + '.join(profiles)}; {platform.machine()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| persons | rows | build s | run wall s | wall s per M rows | run CPU s | tree CPU s | checks s | slowest "
          "| errors | peak RSS MiB | tree peak RSS MiB | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.persons:
        started = time.monotonic()
        url = build(args.engine, args.work, n, args.seed)
        built = time.monotonic() - started
        out = args.work / f"bundle-{args.engine}-{n}"
        if out.exists():
            import shutil
            shutil.rmtree(out)
        try:
            m = measure(url, out, profiles, args.statement_timeout, args.engine_memory)
            rows = rows_of(url)   # after the run: the parent stays small while the child is measured
        finally:
            drop(args.engine, url, n)
        print(f"| {n:,} | {rows:,} | {built:.1f} | {m['wall_s']} | {m['wall_s'] / (rows / 1e6):.1f} | {m['cpu_s']} | "
              f"{m['tree_cpu_s']} | {m['checks_s']} | {m['slowest']} | {m['errors']} | {m['peak_rss_mib']} | "
              f"{m['tree_peak_rss_mib']} | {m['verdict']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
