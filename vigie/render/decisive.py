"""The decisive excerpt of a finding's evidence: the few lines of what was observed that a reviewer needs to
see the violation (the HTTP request line and status, the header in question, the protocols a scan saw
accepted, the SQL query that counted, the load figures and charts, a scanner's findings), read from the
evidence files of the bundle. Each kind is recognised by the shape of its JSON, as in evidence_view."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markupsafe import Markup

from . import evidence_view
from .i18n import date_text, t

# evidence read to be shown; larger files are linked only (a report must render in seconds)
READ_MAX_BYTES = 8 * 1024 * 1024
MAX_LINES = 4
SQL_MAX_CHARS = 240
# a header a finding names: capitalised words joined by hyphens (Strict-Transport-Security, X-Powered-By)
HEADER_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+\b")
QUOTED_IDENTIFIER = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"')


def bundle_file(bundle_dir: Path | None, path: str) -> Path | None:
    """The evidence file `path` of the bundle, or None when it would lie outside it (a crafted report)."""
    if bundle_dir is None:
        return None
    bundle = Path(bundle_dir).resolve()
    file = (bundle / path).resolve()
    return file if file.is_relative_to(bundle) else None


def read_json(file: Path | None) -> object | None:
    """The JSON of an evidence file small enough to be read, else None (it stays linked)."""
    if file is None or file.suffix != ".json" or not file.is_file() or file.stat().st_size >= READ_MAX_BYTES:
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError):
        return None


def decisive(outcome: dict, bundle_dir: Path | None, lang: str, base_url: str = "") -> list[dict]:
    """[{"path", "lines": [text], "charts": [{"svg", "caption"}]}] for each evidence file of `outcome` with
    something to show; `base_url` (the target's) makes request lines read as the finding names them."""
    said = _said(outcome)
    items, sql = [], None
    for path in outcome.get("evidence") or []:
        data = read_json(bundle_file(bundle_dir, path))
        if isinstance(data, dict) and isinstance(data.get("queries"), list):
            sql = _best_query(data["queries"], path, said, lang, sql)
            continue
        item = _item(data, said, lang, base_url)
        if item and (item["lines"] or item["charts"]):
            items.append({"path": path, **item})
    if any(i.get("scenario") for i in items):  # the scenario a load target judges, not the whole run
        items = [i for i in items if i.get("scenario") or not i.get("load")]
    if sql:
        items.append({"path": sql["path"], "lines": [sql["line"]], "charts": []})
    return items


def _said(outcome: dict) -> str:
    """What the finding says, where the evidence is looked up: summary, messages, measurements."""
    parts = [str(outcome.get("summary") or ""), *map(str, outcome.get("messages") or [])]
    parts.append(json.dumps(outcome.get("measurements") or {}, ensure_ascii=False))
    return unquote("\n".join(parts))


def _item(data: object, said: str, lang: str, base_url: str) -> dict | None:
    shown = evidence_view.view(data, lang)
    kind = shown["kind"] if shown else None
    if kind == "http":
        return {"lines": _http_lines(data, said, lang, base_url), "charts": []}
    if kind == "tls":
        return {"lines": _tls_lines(shown, lang), "charts": []}
    if kind == "load":
        return {"lines": [_load_line(shown, lang)], "charts": charts_of(shown), "load": True,
                "scenario": bool(data.get("scenario"))}
    if isinstance(data, dict) and isinstance(data.get("findings"), list):
        return {"lines": _scan_lines(data["findings"]), "charts": []}
    if isinstance(data, dict) and isinstance(data.get("findings"), dict):
        return {"lines": _fuzz_lines(data["findings"]), "charts": []}
    if isinstance(data, dict) and isinstance(data.get("dependencies"), list):
        return {"lines": _audit_lines(data, lang), "charts": []}
    return None


# --- HTTP -----------------------------------------------------------------------------------------------


def request_target(url: str) -> str:
    """The request line's target: path and query, as the server received them."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _relative(url: str, base_url: str) -> str:
    """The request as a check names it: relative to the target's base ("Patient/1", "metadata")."""
    target, base = unquote(request_target(url)), urlsplit(base_url).path.rstrip("/")
    if base and target.startswith(base + "/"):
        target = target[len(base):]
    return target.lstrip("/")


def _named(relative: str, said: str) -> bool:
    """The finding names this request as a whole ("Patient/1", not the "Patient" of "Patient/1")."""
    return bool(relative) and re.search(rf"(?<!\w){re.escape(relative)}(?![\w/?&=])", said) is not None


def _http_lines(exchanges: list[dict], said: str, lang: str, base_url: str) -> list[str]:
    exchanges = [x for x in exchanges if isinstance(x, dict) and isinstance(x.get("request"), dict)]
    named = [(len(rel), x) for x in exchanges if _named(rel := _relative(str(x["request"].get("url", "")),
                                                                       base_url), said)]
    # the most precisely named request first: "Patient/1" before the "AuditEvent" searches that looked for it
    chosen = ([x for _, x in sorted(named, key=lambda n: -n[0])]
              or [x for x in exchanges if not _answered_well(x)] or exchanges[:1])
    lines = []
    for x in chosen[:MAX_LINES - 1]:
        lines.append(_request_line(x, lang))
        lines += _header_lines(x.get("response"), said, lang)
    if len(chosen) >= MAX_LINES:
        lines.append(t("more_exchanges", lang, n=len(chosen) - (MAX_LINES - 1)))
    return lines


def _answered_well(exchange: dict) -> bool:
    response = exchange.get("response")
    return isinstance(response, dict) and isinstance(response.get("status"), int) and response["status"] < 400


def _request_line(exchange: dict, lang: str) -> str:
    request, response = exchange["request"], exchange.get("response")
    line = f"{request.get('method', '')} {request_target(str(request.get('url', '')))} → "
    if isinstance(response, dict):
        return line + f"{response.get('status', '')} {response.get('reason') or ''}".rstrip()
    error = f" ({exchange['error']})" if exchange.get("error") else ""
    return line + t("no_response", lang) + error


def _header_lines(response: object, said: str, lang: str) -> list[str]:
    """The response headers the finding names, with their value, or as absent where it says a header is
    missing ("no X header", "aucun en-tête X")."""
    if not isinstance(response, dict) or not isinstance(response.get("headers"), dict):
        return []
    headers = {str(k).lower(): (str(k), str(v)) for k, v in response["headers"].items()}
    names = {n.lower(): n for n in HEADER_NAME.findall(said)}
    names |= {k: name for k, (name, _) in headers.items() if re.search(rf"\b{re.escape(name)}:", said)}
    lines = []
    for key, name in sorted(names.items()):
        if key in headers:
            lines.append(f"{headers[key][0]}: {headers[key][1]}")
        elif re.search(rf"{re.escape(name)} header|en-tête {re.escape(name)}", said, re.IGNORECASE):
            lines.append(f"{name}: {t('header_absent', lang)}")
    return lines[:MAX_LINES]


# --- scans, load, SQL -----------------------------------------------------------------------------------


def _tls_lines(shown: dict, lang: str) -> list[str]:
    colon = t("colon", lang)
    lines = [f"{t('protocols', lang)}{colon} {', '.join(shown['protocols']) or '—'}"]
    cert = dict(shown["certificate"])
    key = " ".join(cert[k] for k in ("key_type", "key_bits", "signature_algorithm") if k in cert)
    if key:
        until = f", {t('valid_until', lang, date=date_text(cert['not_after'], lang))}" if "not_after" in cert else ""
        lines.append(f"{t('certificate', lang)}{colon} {key}{until}")
    if shown["errors"]:
        lines.append(f"{t('scan_errors', lang)}{colon} {'; '.join(shown['errors'])}")
    return lines


def _load_line(shown: dict, lang: str) -> str:
    return ", ".join(f"{t('load.' + k, lang)} {v}" for k, v in shown["numbers"] if v != "")


def charts_of(shown: dict) -> list[dict]:
    """The charts a load view draws, as {"svg", "caption"}: SVG that vigie drew (charts.py escapes what it
    quotes), so marked safe to embed."""
    return [{"svg": Markup(f["svg"]), "caption": str(f.get("caption", ""))}
            for f in shown.get("figures") or [] if isinstance(f, dict) and f.get("svg")]


def _scan_lines(found: list) -> list[str]:
    lines = [f"{f.get('rule', '')} {f.get('severity', '')} {f.get('file', '')}:{f.get('line', '')} — "
             f"{f.get('message', '')}" for f in found if isinstance(f, dict)]
    return lines[:MAX_LINES]


def _fuzz_lines(kinds: dict) -> list[str]:
    lines = []
    for kind, group in kinds.items():
        kept = group.get("kept") if isinstance(group, dict) else None
        first = kept[0] if isinstance(kept, list) and kept and isinstance(kept[0], dict) else {}
        lines.append(f"{kind} ({group.get('count', '?') if isinstance(group, dict) else '?'}): "
                     f"{first.get('method', '')} {request_target(str(first.get('url', '')))} → "
                     f"{first.get('status', '')} — {first.get('detail', '')}")
    return lines[:MAX_LINES]


def _audit_lines(audit: dict, lang: str) -> list[str]:
    lines = [f"{d.get('name')} {d.get('version')}: "
             f"{', '.join(str(v.get('id') if isinstance(v, dict) else v) for v in d['vulns'])}"
             for d in audit["dependencies"] if isinstance(d, dict) and isinstance(d.get("vulns"), list) and d["vulns"]]
    if audit.get("unaudited"):
        lines.append(f"{t('unaudited', lang)}{t('colon', lang)} {', '.join(map(str, audit['unaudited']))}")
    return lines[:MAX_LINES]


def _best_query(queries: list, path: str, said: str, lang: str, best: dict | None) -> dict | None:
    """The query whose quoted identifiers the finding names most (the one that counted what it reports);
    among equals, the later one of the first file (the outcome's own queries come before shared ones)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", said))
    for q in queries:
        if not isinstance(q, dict) or not isinstance(q.get("sql"), str):
            continue
        score = len(set(QUOTED_IDENTIFIER.findall(q["sql"])) & words)
        if best is None or score > best["score"] or (score == best["score"] and path == best["path"]):
            sql = " ".join(q["sql"].split())
            sql = sql if len(sql) <= SQL_MAX_CHARS else sql[:SQL_MAX_CHARS] + " …"
            best = {"score": score, "path": path, "line": f"{sql} → {t('sql_rows', lang, n=q.get('rows', '?'))}"}
    return best
