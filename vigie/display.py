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


def verdict_table(console, report: dict, out: Path) -> None:
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
    for line in report["run"].get("suite_errors", []):
        console.print(f"[red]suite error:[/] {_shown(line)}")
    reasons = unverified_reasons(report)
    if reasons:
        console.print("[bold]not verified[/] (error, not tested), and why:")
        for ids, reason in reasons[:MAX_REASONS]:
            console.print(f" [magenta]{_shown(', '.join(ids))}[/]: {_shown(reason)}", overflow="fold")
        if len(reasons) > MAX_REASONS:
            console.print(f" and {len(reasons) - MAX_REASONS} other reasons: see the report")
    if report["run"].get("interrupted"):
        console.print(f"[bold magenta]run interrupted[/] ({_shown(report['run']['interrupted'])}): the requirements "
                      "not reached are not_tested, the results are partial; "
                      f"`vigie report {_shown(shlex.quote(str(out)))}` renders the HTML and PDF reports")
    console.print(f"overall verdict: [{VERDICT_STYLE[report['verdict']]}]{report['verdict']}[/]")
    html = Path(out) / "report.html"
    console.print(f"report: {_shown(html if html.exists() else Path(out) / 'report.json')}")
