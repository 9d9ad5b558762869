"""The renderings of a bundle (HTML, PDF, JUnit, SARIF, Allure, Markdown), made from report.json in a child
process bounded in time and memory.

A report of thousands of outcomes (an `ig:` package of 10,000 resources) takes minutes and gigabytes to lay
out, the PDF above all: the run's time limit and memory ceiling bound its renderings like the rest of the run.
The child renders one format after another, cheapest first, and says on its stdout when each starts and ends.
Killed at the deadline, it keeps what it finished; what it was rendering is removed and reported as cut short,
what it had not begun as not rendered. report.json, written before, is always there.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import VigieError
from .lifeline import PARENT_VARIABLE

FILES = {"md": "summary.md", "junit": "junit.xml", "sarif": "results.sarif", "allure": "allure-results",
         "html": "report.html", "pdf": "report.pdf"}
# what a run writes without being asked, cheapest first: a run cut short keeps the most renderings
DEFAULT_FORMATS = tuple(FILES)
WRITTEN, FAILED, CUT, NOT_RENDERED, STARTED = "written", "failed", "cut short", "not rendered", "started"
OUT_OF_MEMORY = "out of memory"
MEMORY_VARIABLE = "VIGIE_RENDER_MEMORY"
KILL_WAIT_S = 10.0   # a killed child's last words (its stdout) are read within this


@dataclass(frozen=True)
class Bounds:
    """What the renderings may take: seconds, bytes of data, and what a rendering cut by time says."""
    seconds: float
    memory: int
    why: str


@dataclass
class Rendering:
    """What became of one format."""
    format: str
    status: str = NOT_RENDERED
    reason: str | None = None
    usage: bool = False    # failed for a reason on the user's side (the PDF's libraries missing)
    defect: bool = False   # failed on a defect of vigie's renderer

    @property
    def file(self) -> str:
        return FILES[self.format]

    def to_json(self) -> dict:
        return {"format": self.format, "file": self.file, "status": self.status,
                **({"reason": self.reason} if self.reason else {})}


RENDERING_FIELDS = ("format", "status", "reason", "usage", "defect")


class RenderingDefect(Exception):
    """A renderer of vigie failed on a report: vigie's defect, reported once the bundle is sealed."""


def check_formats(formats) -> tuple:
    unknown = [f for f in formats if f not in FILES]
    if unknown:
        raise VigieError(f"unknown report format '{unknown[0]}' (known: {', '.join(FILES)})")
    return tuple(dict.fromkeys(formats))


def render(bundle: Path, formats, bounds: Bounds | None = None) -> list[Rendering]:
    """Renders report.json of `bundle` into each format: in a child process within `bounds`, or here without
    bounds (None). A rendering not written leaves no file behind (neither a partial one nor one of an earlier
    rendering of the bundle) and a warning on stderr."""
    from .display import strip_control
    formats = check_formats(formats)
    bundle = Path(bundle)
    if bounds is None:
        results = _render_each(bundle, formats, json.loads((bundle / "report.json").read_text(encoding="utf-8")))
    else:
        results = _run_child(bundle, formats, bounds)
    for result in results:
        if result.status != WRITTEN:
            _remove(bundle / result.file)
            again = f"; `vigie report {strip_control(bundle)} --format {result.format}` renders it again" \
                if result.status in (CUT, NOT_RENDERED) else ""
            sys.stderr.write(f"vigie: warning: {result.file} {result.status}: {result.reason}{again}\n")
    return results


def failure(results: list[Rendering], optional=()) -> Exception | None:
    """What a command must end on once the bundle is sealed: a renderer's defect, or a format asked for by
    name that could not be made on this machine."""
    for result in results:
        if result.defect:
            return RenderingDefect(f"{result.file}: {result.reason}")
    for result in results:
        if result.usage and result.format not in optional:
            return VigieError(result.reason)
    return None


def _run_child(bundle: Path, formats: tuple, bounds: Bounds) -> list[Rendering]:
    """The renderings made by a child process killed at the deadline."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, PARENT_VARIABLE: str(os.getpid()), MEMORY_VARIABLE: str(bounds.memory),
           "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    # -P: the working directory must not shadow a module the renderers import
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([sys.executable, "-P", "-c", "from vigie.rendering import child; child()",
                                 str(bundle.absolute()), *formats], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=errors, start_new_session=True)
        ended = None
        try:
            out, _ = proc.communicate(timeout=max(bounds.seconds, 0.0))
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, _ = proc.communicate(timeout=KILL_WAIT_S)
            ended = bounds.why
        finally:
            _kill(proc)
        if ended is None and proc.returncode != 0:
            ended = _died(proc.returncode, errors, bounds)
    results = {fmt: Rendering(fmt) for fmt in formats}
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue   # a library's own print
        if isinstance(event, dict) and event.get("format") in results:
            results[event["format"]] = Rendering(**{k: event[k] for k in RENDERING_FIELDS if k in event})
    for result in results.values():
        if result.status == STARTED:   # it was rendering this one when it was stopped
            result.status, result.reason = CUT, ended or "the rendering process stopped"
        elif result.status == NOT_RENDERED:
            result.reason = ended or "the rendering process stopped before it"
        elif result.reason == OUT_OF_MEMORY:
            result.reason = f"the memory ceiling of {_size(bounds.memory)} was reached"
    return list(results.values())


def _died(returncode: int, errors, bounds: Bounds) -> str:
    errors.seek(0, os.SEEK_END)
    errors.seek(max(0, errors.tell() - 4096))
    last = (errors.read().decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1][:300]
    how = f"signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return (f"the rendering process ended ({how}: {last}); the memory ceiling of {_size(bounds.memory)} "
            f"may have been reached")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # its own session: nothing else shares this group
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(count: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):g} {unit}"
    return f"{count} bytes"


def _render_each(bundle: Path, formats, report: dict, say=None) -> list[Rendering]:
    """Renders each format in turn, in the report's language; `say` is told of each as it starts and ends."""
    from .messages import localized
    report = localized(report, report["run"]["lang"])
    results = []
    for fmt in formats:
        result = Rendering(fmt, status=STARTED)
        if say:
            say(result)
        _remove(bundle / result.file)   # an earlier rendering is replaced, never left beside a failed one
        try:
            RENDERERS[fmt](report, bundle)
            result.status = WRITTEN
        except VigieError as exc:
            result.status, result.reason, result.usage = FAILED, str(exc), True
        except MemoryError:
            result.status, result.reason = FAILED, OUT_OF_MEMORY
        except Exception as exc:  # noqa: BLE001 - a renderer's defect costs its own rendering, not the others
            result.status, result.defect = FAILED, True
            result.reason = f"internal error of vigie: {type(exc).__name__}: {str(exc)[:300]}"
        if say:
            say(result)
        results.append(result)
    return results


# ---- the child process ----------------------------------------------------------------------------------

def child() -> None:
    """`python -c 'from vigie.rendering import child; child()' BUNDLE FORMAT...`: renders each format in
    turn within the memory ceiling, one JSON line on stdout as each starts and ends."""
    from .lifeline import bind_to_parent
    bind_to_parent()
    memory = int(os.environ.pop(MEMORY_VARIABLE))
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (memory if hard == resource.RLIM_INFINITY else min(memory, hard), hard))
    bundle, formats = Path(sys.argv[1]), sys.argv[2:]
    _render_each(bundle, formats, json.loads((bundle / "report.json").read_text(encoding="utf-8")), _say)


def _say(result: Rendering) -> None:
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()


def _html(report, bundle):
    from .render.html import render_html
    render_html(report, bundle / FILES["html"], report["run"]["lang"], bundle)


def _junit(report, bundle):
    from .render.junit import render_junit
    render_junit(report, bundle / FILES["junit"])


def _markdown(report, bundle):
    from .render.markdown import render_markdown
    render_markdown(report, bundle / FILES["md"], report["run"]["lang"])


def _sarif(report, bundle):
    from .render.sarif import render_sarif
    render_sarif(report, bundle / FILES["sarif"], report["run"]["lang"])


def _allure(report, bundle):
    from .render.allure import render_allure
    render_allure(report, bundle / FILES["allure"], report["run"]["lang"])


def _pdf(report, bundle):
    try:
        import weasyprint  # noqa: F401  (its system libraries are loaded on import)

        from .render.pdf import render_pdf
    except (ImportError, OSError) as exc:
        from .extras import install_line
        raise VigieError(f"the PDF report needs weasyprint ({install_line('pdf')}) and its system libraries "
                         f"(pango): {exc}") from None
    render_pdf(report, bundle / FILES["pdf"], report["run"]["lang"], bundle)


RENDERERS = {"md": _markdown, "junit": _junit, "sarif": _sarif, "allure": _allure, "html": _html, "pdf": _pdf}
