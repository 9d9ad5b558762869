"""How fast vigie's load phase generates requests, compared with raw locust and with wrk, in one run.

Against one fast endpoint (a static nginx answer on loopback), for the same users and time:
- vigie: vigie.load.process.run_load, i.e. vigie's driver (its per-second histograms, its watcher) in a
  subprocess, with a FastHttpUser that does nothing but GET /;
- locust: the `locust` command line, headless, with the same locustfile;
- wrk: the C load generator (2 threads), the ceiling of what the machine can send.
Rounds alternate between the generators so that a noisy neighbour hurts all of them alike; the median
round counts. Target: vigie reaches at least 0.9 of raw locust.

    python benchmarks/load_generator.py [--users 10] [--seconds 10] [--rounds 3] [--record benchmarks/RESULTS.md]

Needs nginx (Debian: nginx-light or nginx) and wrk on the PATH; sends traffic only to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOCUSTFILE = '''
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser


class Static(FastHttpUser):
    wait_time = constant(0)

    @task
    def index(self):
        self.client.get("/", name="static")
'''

NGINX_CONF = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(work: Path) -> tuple[subprocess.Popen, str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        sys.exit("nginx not found: apt-get install -y nginx-light")
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=work, port=port))
    proc = subprocess.Popen([nginx, "-p", str(work), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"nginx did not start: {proc.stderr.read().decode(errors='replace')[-300:]}")
            time.sleep(0.1)
    proc.kill()
    sys.exit("nginx did not listen within 10 s")


def child_cpu() -> float:
    """CPU seconds used by the finished child processes so far (each generator runs as a child)."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_vigie(locustfile: Path, url: str, users: int, seconds: float, out: Path) -> float:
    from vigie.load.process import run_load
    result = run_load(locustfile, url, users, users, seconds, env={}, out_dir=out)
    return result.aggregated.count / result.duration_s


def run_locust(locustfile: Path, url: str, users: int, seconds: float, out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(users),
           "-t", f"{seconds:g}s", "--host", url, "--json", "--stop-timeout", "2", "--loglevel", "WARNING"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=seconds + 60, cwd=out)
    stats = json.loads(done.stdout)
    count = sum(s["num_requests"] for s in stats)
    started = min(s["start_time"] for s in stats)
    last = max(s["last_request_timestamp"] for s in stats)
    return count / max(seconds, last - started)


def run_wrk(url: str, users: int, seconds: float) -> float:
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk not found: apt-get install -y wrk")
    done = subprocess.run([wrk, "-t2", f"-c{users}", f"-d{int(seconds)}s", url + "/"], check=False,
                          capture_output=True, text=True, timeout=seconds + 30)
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if not match:
        sys.exit(f"wrk gave no rate: {done.stdout[-300:]} {done.stderr[-300:]}")
    return float(match.group(1))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()
    from importlib.metadata import version
    rates: dict[str, list[float]] = {"vigie": [], "locust": [], "wrk": []}
    per_cpu: dict[str, list[float]] = {"vigie": [], "locust": []}  # requests per CPU second of the generator
    with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp:
        work = Path(tmp)
        locustfile = work / "locustfile_static.py"
        locustfile.write_text(LOCUSTFILE)
        nginx, url = start_nginx(work)
        try:
            for r in range(args.rounds):
                for name, run in (("vigie", run_vigie), ("locust", run_locust)):
                    before = child_cpu()
                    rate = run(locustfile, url, args.users, args.seconds, work / f"{name}-{r}")
                    rates[name].append(rate)
                    per_cpu[name].append(rate * args.seconds / max(1e-6, child_cpu() - before))
                rates["wrk"].append(run_wrk(url, args.users, args.seconds))
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()), flush=True)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    median = {k: statistics.median(v) for k, v in rates.items()}
    ratio_locust, ratio_wrk = median["vigie"] / median["locust"], median["vigie"] / median["wrk"]
    cpu = {k: statistics.median(v) for k, v in per_cpu.items()}
    verdict = "met" if ratio_locust >= 0.9 else "NOT met"
    lines = [
        "## Load generator (benchmarks/load_generator.py)",
        "",
        (f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}; locust {version('locust')}; "
         f"nginx static answer on loopback; {args.users} users (wrk: {args.users} connections, 2 threads), "
         f"{args.seconds:g} s per run, {args.rounds} alternating rounds, median shown."),
        "",
        "| generator | requests/s (median) | rounds | vigie / generator |",
        "|---|---|---|---|",
        *(f"| {k} | {median[k]:.0f} | {', '.join(f'{x:.0f}' for x in v)} | "
          f"{median['vigie'] / median[k]:.2f} |" for k, v in rates.items()),
        "",
        (f"vigie reaches {ratio_locust:.2f} of raw locust (target 0.9: {verdict}) and {ratio_wrk:.2f} of wrk. "
         f"Requests per CPU second of the generator process (start-up included): vigie {cpu['vigie']:.0f}, "
         f"locust {cpu['locust']:.0f} ({cpu['vigie'] / cpu['locust']:.2f})."),
        "",
    ]
    print("\n".join(lines))
    if args.record:
        with open(args.record, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0 if ratio_locust >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
