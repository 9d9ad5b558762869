"""What the terminal shows during and after a run (rich)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from rich.markup import escape
from rich.table import Table

# C0 controls but tab and newline, DEL and the C1 controls (8-bit CSI, OSC...): a target's text must not drive
# the reader's terminal (clear the screen, set its title, move the cursor); nor may bidirectional overrides
# make it read other than it is
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_control(text: str) -> str:
    """The text with each control character replaced by U+FFFD, visibly."""
    return _CONTROL.sub("\ufffd", str(text))


def _shown(text) -> str:
    """A value from a target or a report, fit for rich: no control character, no markup."""
    return escape(strip_control(text))


STYLE = {"passed": ("✔", "green"), "failed": ("✘", "red"), "error": ("!", "magenta"), "skipped": ("-", "yellow"),
         "not_applicable": ("·", "dim"), "not_tested": ("?", "yellow")}
WIDE = 110   # columns the verdict table needs with its counts' headings in words
VERDICT_STYLE = {"conformant": "bold green", "conformant-with-reservations": "bold yellow",
                 "non-conformant": "bold red", "incomplete": "bold magenta",
                 "not_applicable": "bold"}


SHOWN_CHARS = 300   # of a summary on its live line: the report holds all of it


def outcome_line(console, o) -> None:
    mark, colour = STYLE[o.status]
    console.print(f" [{colour}]{mark} {o.status:<14}[/] {_shown(o.requirement)}@{_shown(o.target)} "
                  # a summary may quote the target ("[/x]" would be markup, "[redacted]" would vanish)
                  f"[dim]{_shown(o.level)}[/] {_shown(_cut(o.summary, SHOWN_CHARS))}",
                  markup=True, overflow="fold")


def _cut(text: str, limit: int) -> str:
    """`text` cut at a word before `limit` characters, with an ellipsis when it was cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


MAX_REASONS = 8   # distinct reasons listed under the verdicts; the report lists every outcome


def unverified_reasons(report: dict) -> list[tuple[list[str], str]]:
    """The requirements that could not be verified (error, not tested), grouped by their reason, the reasons
    shared by most requirements first: what the user can act on (a package to add, a token to give)."""
    by_reason: dict[str, list[str]] = {}
    for o in report.get("outcomes", []):
        if o["status"] in ("error", "not_tested"):
            by_reason.setdefault(o.get("summary") or "", []).append(o["requirement"])
    return sorted(((sorted(set(ids)), reason) for reason, ids in by_reason.items()), key=lambda r: -len(r[0]))


# what a reason asks the user to do (add a package, give a token, a CA file, install an extra): such reasons are
# all listed under the verdicts, beyond MAX_REASONS
ACTIONS = ("vigie packages", "[targets.tokens]", "--token", "token in vigie.toml", "--ca-file", "pip install")


def shown_reasons(report: dict) -> tuple[list[tuple[list[str], str]], int]:
    """The reasons listed under the verdicts (every one that names an action, then the commonest others, up to
    MAX_REASONS in all), and how many are left for the report."""
    reasons = unverified_reasons(report)
    actions = [r for r in reasons if any(a in r[1] for a in ACTIONS)]
    others = [r for r in reasons if r not in actions]
    shown = actions + others[:max(MAX_REASONS - len(actions), 0)]
    return sorted(shown, key=reasons.index), len(reasons) - len(shown)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class Progress:
    """The live line under the outcomes on a terminal: outcomes recorded of those the campaign selects, time
    elapsed, and the time left if the rest goes as fast (the load phase, last, goes slower)."""

    def __init__(self, total: int, clock=None):
        import time
        self.clock = clock or time.monotonic
        self.total, self.done, self.started = total, 0, self.clock()

    def advance(self) -> None:
        self.done += 1

    def __rich__(self) -> str:   # read at each refresh of the live line: the elapsed time runs between outcomes
        return escape(self.text())

    def text(self) -> str:
        elapsed = self.clock() - self.started
        line = f"{self.done}/{self.total} requirements checked, {_duration(elapsed)} elapsed"
        if 0 < self.done < self.total:
            line += f", about {_duration(elapsed / self.done * (self.total - self.done))} left"
        return line


def verdict_table(console, report: dict, out: Path, quiet: bool = False) -> None:
    """The verdicts, what could not be verified and why, the overall verdict and the report's path; `quiet`
    (a CI log): the last two and the suite's errors only."""
    if not quiet:
        _table(console, report)
    for line in report["run"].get("suite_errors", []):
        console.print(f"[red]suite error:[/] {_shown(line)}")
    if report["run"].get("interrupted") and not quiet:
        console.print(f"[bold magenta]run interrupted[/] ({_shown(report['run']['interrupted'])}): the requirements "
                      "not reached are not_tested, the results are partial; "
                      f"`vigie report {_shown(shlex.quote(str(out)))}` renders the HTML and PDF reports")
    console.print(f"overall verdict: [{VERDICT_STYLE[report['verdict']]}]{report['verdict']}[/]")
    html = Path(out) / "report.html"
    console.print(f"report: {_shown(html if html.exists() else Path(out) / 'report.json')}")


def _table(console, report: dict) -> None:
    # on a narrow terminal the verdict stays whole: the names fold, the counts are headed by the live lines' marks
    counted = ("passed", "failed", "error", "not_tested", "not_applicable")
    narrow = console.width < WIDE
    table = Table(title="Verdicts", caption="  ".join(f"{STYLE[s][0]} {s.replace('_', ' ')}" for s in counted)
                  if narrow else None)
    table.add_column("profile", overflow="fold")
    table.add_column("version", overflow="fold")
    table.add_column("verdict", no_wrap=True, min_width=max((len(p["verdict"]) for p in report["profiles"]),
                                                             default=7))
    for status in counted:
        table.add_column(STYLE[status][0] if narrow else status.replace("_", " "), justify="right")
    for p in report["profiles"]:
        c = p["counts"]
        table.add_row(_shown(p["id"]), _shown(p["version"]), f"[{VERDICT_STYLE[p['verdict']]}]{p['verdict']}[/]",
                      str(c["passed"]), str(c["failed"]), str(c["error"]),
                      str(c["not_tested"] + c.get("skipped", 0)), str(c["not_applicable"]))
    console.print(table)
    reasons, left = shown_reasons(report)
    if reasons:
        console.print("[bold]not verified[/] (error, not tested), and why:")
        for ids, reason in reasons:
            console.print(f" [magenta]{_shown(', '.join(ids))}[/]: {_shown(reason)}", overflow="fold")
        if left:
            console.print(f" and {left} other reasons: see the report")
