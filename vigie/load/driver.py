"""The load driver: runs in its own interpreter, after `import locust` (see vigie.load.process).

Three roles, one statistics format:
- local: one headless LocalRunner;
- master: a MasterRunner that waits for its workers, runs, then asks each worker for a final report and
  keeps the merge of every worker's histograms (locust's own master/worker protocol);
- worker: a WorkerRunner that joins a master and also keeps the sum of what it reported (evidence that
  the master's totals are the merge of its workers').

A watcher evaluates the run every WATCH_S: it stops a run that no target answers, and a run where an
abort_on_fail target is already lost (k6's abortOnFail). Every response time is recorded on the request event
into vigie's own histograms (locust's round to about two digits), with per-second counts and chart buckets
per request name (locust itself keeps only counts per second); workers send theirs with each report to the
master.
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from .histogram import CHART_DIGITS, bucket, label, merge_into
from .stats import AGGREGATED, LoadResult, add_second, per_second_from_json, per_second_json, second, series
from .targets import lost, undecided

ERROR_MARK = "VIGIE-LOAD-ERROR: "
UNREACHABLE_AFTER = 20  # requests without a single HTTP response after which the run stops early
WATCH_S = 0.5
FLUSH = "vigie-flush"  # master -> worker: stop the users and send a final report
FINAL = "vigie_final"  # marks a worker's report sent after its users stopped


def extension_s(duration_s: float) -> float:
    """How long a run may go on past its planned duration while a target lacks responses to be judged:
    a short run (the 2 s of a quick check) may need a few seconds more for its rarest request; a long one
    that still lacks them after 30 s more has a scenario problem that more time will not fix."""
    return 30.0


def fail(message: str) -> int:
    print(ERROR_MARK + " ".join(message.split()), file=sys.stderr, flush=True)
    return 2


class Recorder:
    """What locust does not keep exactly: every response time per request name (vigie.load.histogram, the
    statistics targets are judged on), per-second counts and chart buckets per request name, HTTP statuses,
    locustfile errors."""

    def __init__(self):
        self.times: dict[str, Counter] = defaultdict(Counter)  # request name -> bucket (ms) -> count
        self.seconds: dict[str, dict[int, dict]] = defaultdict(dict)  # request name -> unix second -> second()
        self.status_codes: Counter = Counter()
        self.user_errors: Counter = Counter()
        self.users: dict[int, int] = {}
        self.requests = 0
        self.responses = 0

    def on_request(self, name="", response_time=None, exception=None, response=None, **_):
        # on every request of the run: kept cheap, so that vigie's generator stays as fast as raw locust
        t = int(time.time())
        point = self.seconds[name].get(t) or self.seconds[name].setdefault(t, second())
        point["requests"] += 1
        self.requests += 1
        if response_time is not None:
            self.times[name][bucket(response_time)] += 1
            chart = point["response_times"]
            key = bucket(response_time, CHART_DIGITS)
            chart[key] = chart.get(key, 0) + 1
        if exception is not None:
            point["failures"] += 1
        status = getattr(response, "status_code", None)
        if status is None and response is not None:
            self.responses += 1  # a non-HTTP answer (a query's rows, a database error): the target answered
            return
        self.status_codes[status or 0] += 1
        if status:
            self.responses += 1

    def on_user_error(self, exception=None, **_):
        self.user_errors[f"exception in locustfile: {type(exception).__name__}: {exception}"] += 1

    def take(self) -> dict:
        """Everything recorded since the last take, with string keys (msgpack), then forget it."""
        data = {"times": {n: {label(k): c for k, c in h.items()} for n, h in self.times.items()},
                "seconds": per_second_json(self.seconds),
                "status_codes": {str(s): n for s, n in self.status_codes.items()},
                "user_errors": dict(self.user_errors), "requests": self.requests, "responses": self.responses}
        self.__init__()
        return data

    def absorb(self, data: dict) -> None:
        for name, hist in data["times"].items():
            self.times[name].update({float(k): c for k, c in hist.items()})
        for name, points in per_second_from_json(data["seconds"]).items():
            for t, point in points.items():
                add_second(self.seconds[name].setdefault(t, second()), point)
        self.status_codes.update({int(s): n for s, n in data["status_codes"].items()})
        self.user_errors.update(data["user_errors"])
        self.requests += data["requests"]
        self.responses += data["responses"]

    def to_json(self) -> dict:
        """The per-second series: per request name, the aggregated points, the users."""
        return {"per_second": per_second_json(self.seconds),
                "users_per_second": {str(t): n for t, n in sorted(self.users.items())},
                "timeseries": series(self.seconds, self.users, sorted(self.seconds))}


def entry_json(name: str, entries: list, times: dict) -> dict:
    """Locust StatsEntry objects of one request name (one per HTTP method), merged, with vigie's own
    histogram of its response times (locust's is rounded to about two digits)."""
    mins = [e.min_response_time for e in entries if e.min_response_time is not None]
    lasts = [e.last_request_timestamp for e in entries if e.last_request_timestamp]
    starts = [e.start_time for e in entries if e.start_time]
    return {"name": name, "count": sum(e.num_requests for e in entries),
            "failures": sum(e.num_failures for e in entries),
            "response_times": {label(k): v for k, v in sorted(times.items())},
            "total_response_time": sum(e.total_response_time for e in entries),
            "min": min(mins) if mins else None,
            "max": max((e.max_response_time for e in entries), default=0),
            "start_time": min(starts) if starts else None, "end_time": max(lasts) if lasts else None}


def stats_json(stats, recorder: Recorder) -> dict:
    """A locust RequestStats and vigie's response times as {scenarios, aggregated} in LoadResult's format."""
    by_name: dict[str, list] = defaultdict(list)
    for entry in stats.entries.values():
        by_name[entry.name].append(entry)
    every: dict = {}
    for hist in recorder.times.values():
        merge_into(every, hist)
    return {"scenarios": {n: entry_json(n, es, recorder.times.get(n, {})) for n, es in by_name.items()},
            "aggregated": entry_json(AGGREGATED, [stats.total], every)}


def drive(spec_json: str) -> int:
    import gevent
    import locust
    from gevent.event import Event
    from locust.env import Environment
    from locust.log import setup_logging
    from locust.util.load_locustfile import load_locustfile

    spec = json.loads(spec_json)
    role = spec.get("role", "local")
    setup_logging("WARNING")
    name = Path(spec["locustfile"]).name
    try:
        user_classes, _shapes = load_locustfile(spec["locustfile"])
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, ImportError, SystemExit: all mean "cannot load"
        return fail(f"locustfile {name} cannot be loaded: {type(exc).__name__}: {exc}")
    if not user_classes:
        return fail(f"locustfile {name} defines no User class")
    for user_class in user_classes.values():
        # never follow a redirect (FastHttpUser follows 30 by default): it may lead to a host nobody
        # allowed vigie to load
        user_class.max_redirects = 0
    env = Environment(user_classes=list(user_classes.values()), events=locust.events, host=spec["host"],
                      stop_timeout=spec["stop_timeout"], locustfile=spec["locustfile"])
    recorder = Recorder()
    env.events.request.add_listener(recorder.on_request)
    env.events.user_error.add_listener(recorder.on_user_error)
    if role == "worker":
        return _work(spec, env, recorder)

    finals: set[str] = set()
    if role == "master":
        runner = env.create_master_runner(spec["bind_host"], spec["bind_port"])

        def on_worker_report(client_id, data):
            if "vigie" in data:
                recorder.absorb(data["vigie"])
            if data.get(FINAL):
                finals.add(client_id)
        env.events.worker_report.add_listener(on_worker_report)
    else:
        runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    gevent.get_hub().loop.update_now()  # the loop's clock is stale after the import: timers would fire early

    if role == "master":
        deadline = time.monotonic() + spec["wait_workers_s"]
        while len(runner.clients.ready) < spec["expect_workers"]:
            if time.monotonic() > deadline:
                runner.quit()
                return fail(f"only {len(runner.clients.ready)} of {spec['expect_workers']} load workers joined "
                            f"the master within {spec['wait_workers_s']:.0f} s")
            gevent.sleep(0.1)

    state = {"aborted": None}
    over = Event()
    started = time.time()

    def live() -> LoadResult:
        return LoadResult.from_json({**stats_json(env.stats, recorder), "duration_s": time.time() - started,
                                     "users": spec["users"]})

    def watch():
        while not over.is_set():
            over.wait(WATCH_S)
            now = time.time()
            recorder.users[int(now)] = runner.user_count
            if recorder.requests >= UNREACHABLE_AFTER and not recorder.responses:
                # nothing answers (refused, TLS rejected): waiting out the run time would observe nothing more
                state["aborted"] = f"run stopped after {now - started:.1f} s: no HTTP response"
                over.set()
            elif not recorder.requests and sum(recorder.user_errors.values()) >= spec["users"]:
                # every user failed in the locustfile before its first request (no connection, bad settings)
                state["aborted"] = f"run stopped after {now - started:.1f} s: no user could start"
                over.set()
            elif spec["abort"]:
                counts = live()
                for rid, params in spec["abort"]:
                    why = lost(counts, params, now - started)
                    # stopped once the other targets have what they need: stopping loses none of them
                    if why and not undecided(counts, spec["targets"]):
                        state["aborted"] = f"run aborted after {now - started:.1f} s: {rid} lost ({why})"
                        over.set()
                        break

    runner.start(spec["users"], spawn_rate=spec["spawn_rate"])
    watcher = gevent.spawn(watch)
    over.wait(spec["duration_s"])
    # past the planned duration only while a target still lacks the responses it needs, within a bound
    extended = started + spec["duration_s"] + extension_s(spec["duration_s"])
    while not over.is_set() and time.time() < extended and undecided(live(), spec.get("targets", [])):
        over.wait(WATCH_S)
    over.set()
    watcher.join()
    duration = time.time() - started
    if role == "master":
        # each worker stops its users and reports what is left; only then are the master's totals complete
        runner.send_message(FLUSH)
        deadline = time.monotonic() + spec["stop_timeout"] + 10
        while len(finals) < spec["expect_workers"] and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if len(finals) < spec["expect_workers"]:
            runner.quit()
            return fail(f"only {len(finals)} of {spec['expect_workers']} load workers sent their final report")
        runner.quit()
    else:
        runner.quit()
        runner.greenlet.join()
    env.events.quitting.fire(environment=env, reverse=True)

    errors = Counter()
    for e in env.stats.errors.values():
        errors[f"{e.name}: {e.error}"] += e.occurrences
    errors.update(recorder.user_errors)
    result = {"locustfile": spec["locustfile"], "host": spec["host"], "users": spec["users"],
              "spawn_rate": spec["spawn_rate"], "duration_s": round(duration, 3),
              "workers": spec.get("expect_workers", 0) if role == "master" else 0,
              "aborted": state["aborted"], "plan": spec.get("plan", {}), "http_responses": recorder.responses,
              "status_codes": {str(k): v for k, v in sorted(recorder.status_codes.items())},
              **stats_json(env.stats, recorder), "errors": dict(errors.most_common()), **recorder.to_json()}
    Path(spec["out"]).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def _work(spec: dict, env, recorder: Recorder) -> int:
    """A worker: joins the master, runs what it is told, and keeps the sum of everything it reported."""
    import gevent
    from locust.runners import STATE_STOPPED
    from locust.stats import RequestStats, StatsEntry

    runner = env.create_worker_runner(spec["master_host"], spec["master_port"])
    mirror = RequestStats(use_response_times_cache=False)
    sent = Recorder()  # the sum of vigie's part of every report
    state = {"flushed": False}

    def on_report(client_id, data):
        # after locust's own listener: data["stats"] holds what this report carries to the master
        for item in data.get("stats", []):
            part = StatsEntry.unserialize(item, mirror)
            key = (part.name, part.method)
            if key not in mirror.entries:
                mirror.entries[key] = StatsEntry(mirror, part.name, part.method)
            mirror.entries[key].extend(part)
        if "stats_total" in data:
            mirror.total.extend(StatsEntry.unserialize(data["stats_total"], mirror))
        data["vigie"] = recorder.take()
        sent.absorb(data["vigie"])
        data[FINAL] = state["flushed"]

    def on_flush(environment, msg, **_):
        if runner.state != STATE_STOPPED:
            runner.stop()
        state["flushed"] = True
        runner._send_stats()  # locust's own way to send a report now

    env.events.report_to_master.add_listener(on_report)
    runner.register_message(FLUSH, on_flush, concurrent=True)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    gevent.get_hub().loop.update_now()
    runner.greenlet.join()
    if spec.get("out"):
        Path(spec["out"]).write_text(json.dumps({**stats_json(mirror, sent), "requests": mirror.total.num_requests},
                                                indent=1), encoding="utf-8")
    return 0
