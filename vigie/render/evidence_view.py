"""Readable views of the evidence kinds a reviewer drills into: HTTP exchanges, a TLS scan, load statistics.
Each view is recognised by the shape of the evidence JSON (not by its path), so a new check that records
the same kind of evidence is shown the same way; anything else falls back to a JSON excerpt.
"""
from __future__ import annotations

import json

from ..load.stats import AGGREGATED
from . import charts
from .i18n import t

BODY_EXCERPT_CHARS = 2000
MAX_EXCHANGES = 20
CERTIFICATE_FIELDS = ("subject", "issuer", "key_type", "key_bits", "signature_algorithm", "not_before", "not_after",
                      "san", "hostname_match", "trusted", "trust_error", "untrusted_because")


def view(data: object, lang: str) -> dict | None:
    """{"kind": "http"|"tls"|"load", ...} for evidence of a known shape, else None."""
    if isinstance(data, list) and data and all(isinstance(x, dict) and "request" in x for x in data):
        return _http(data)
    if isinstance(data, dict) and "accepted_protocols" in data and "cipher_suites" in data:
        return _tls(data)
    if isinstance(data, dict) and isinstance(data.get("aggregated"), dict) and "timeseries" in data:
        return _load(data, lang)
    return None


def _excerpt(body: object) -> tuple[str, bool]:
    if body is None or body == "":
        return "", False
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    try:  # JSON bodies are indented so that a reviewer can read them
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):  # RecursionError: a hostile body nested too deep
        pass
    return text[:BODY_EXCERPT_CHARS], len(text) > BODY_EXCERPT_CHARS


def _headers(headers: object) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in headers.items()] if isinstance(headers, dict) else []


def _http(exchanges: list[dict]) -> dict:
    items = []
    for x in exchanges[:MAX_EXCHANGES]:
        req, resp = x.get("request") or {}, x.get("response")
        req_body, req_cut = _excerpt(req.get("body"))
        item = {"method": str(req.get("method", "")), "url": str(req.get("url", "")),
                "request_headers": _headers(req.get("headers")), "request_body": req_body,
                "request_body_cut": req_cut, "elapsed_ms": None, "status": None, "reason": "",
                "response_headers": [], "response_body": "", "response_body_cut": False,
                "error": str(x["error"]) if x.get("error") else ""}
        if isinstance(x.get("elapsed_s"), (int, float)):
            item["elapsed_ms"] = round(x["elapsed_s"] * 1000)
        if isinstance(resp, dict):
            body, cut = _excerpt(resp.get("body"))
            item |= {"status": resp.get("status"), "reason": str(resp.get("reason") or ""),
                     "response_headers": _headers(resp.get("headers")), "response_body": body,
                     "response_body_cut": cut}
        items.append(item)
    return {"kind": "http", "exchanges": items, "more": max(0, len(exchanges) - MAX_EXCHANGES)}


def _show(value: object) -> str:
    """A scan value as JSON writes it (true, null, a list), a string as itself."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _tls(scan: dict) -> dict:
    cert = scan.get("certificate") if isinstance(scan.get("certificate"), dict) else {}
    suites = scan.get("cipher_suites") if isinstance(scan.get("cipher_suites"), dict) else {}
    # what the scan could not complete: "incomplete" (part -> why), "errors" in bundles written before it
    incomplete = scan.get("incomplete") if isinstance(scan.get("incomplete"), dict) else {}
    checks = [(k, scan[k]) for k in ("compression", "secure_renegotiation", "client_renegotiation",
                                     "fallback_scsv", "heartbleed", "robot", "ccs_injection", "early_data",
                                     "extended_master_secret") if k in scan]
    return {"kind": "tls", "endpoint": f"{scan.get('host', '')}:{scan.get('port', '')}",
            "scanner": str(scan.get("scanner", "")),
            "protocols": [str(p) for p in scan.get("accepted_protocols") or []],
            "suites": [(str(p), [str(s) for s in v]) for p, v in suites.items() if isinstance(v, list)],
            "curves": [str(c) for c in scan.get("curves") or []],
            "certificate": [(k, _show(cert[k])) for k in CERTIFICATE_FIELDS if k in cert],
            "checks": [(k, _show(v)) for k, v in checks],
            "errors": [str(e) for e in scan.get("errors") or []] + [f"{k}: {v}" for k, v in incomplete.items()]}


def _load(result: dict, lang: str) -> dict:
    """Load statistics: of a whole run, or of the requests one load target names (its `scenario`), judged
    against its `threshold` (metric, aggregation, op, value), which the charts draw."""
    agg = result["aggregated"]
    histogram = agg.get("response_times") if isinstance(agg.get("response_times"), dict) else {}
    timeseries = result.get("timeseries") if isinstance(result.get("timeseries"), list) else []
    count = agg.get("count") or 0
    duration = result.get("duration_s") or 0
    numbers = [("requests", count), ("failures", agg.get("failures", 0)),
               ("users", result.get("users", "")), ("duration_s", duration),
               ("rps", round(count / duration, 1) if duration else "")]
    for pct in (50, 95, 99):
        value = charts.percentile(histogram, pct)
        numbers.append((f"p{pct}_ms", "" if value is None else charts.fmt_number(value)))
    if isinstance(agg.get("max"), (int, float)):
        numbers.append(("max_ms", charts.fmt_number(agg["max"])))
    scenario = _scenario(result.get("scenario"), agg.get("name"), lang)
    judged = result.get("threshold") if isinstance(result.get("threshold"), dict) else {}
    threshold = _threshold(judged, lang)
    metric = judged.get("metric") if threshold else None
    seconds = t("chart_seconds", lang)
    figures = []
    for key, draw, caption, y_label, own in (
            ("time_chart", charts.latency_over_time, "chart_latency_time", "chart_ms", "latency"),
            ("dist_chart", charts.latency_distribution, "chart_latency_dist", "chart_requests", "latency"),
            ("rate_chart", charts.error_rate_over_time, "chart_error_rate_time", "chart_percent", "error_rate"),
            ("rate_chart", charts.throughput_over_time, "chart_throughput_time", "chart_rps", "throughput")):
        if key == "rate_chart" and metric != own:
            continue   # an error rate or throughput chart only for the target judged on it
        title = f"{t(caption, lang)} — {scenario}"
        x_label = t("chart_ms", lang) if key == "dist_chart" else seconds
        data = histogram if key == "dist_chart" else timeseries
        svg = draw(data, title, x_label, t(y_label, lang), threshold if metric == own else None)
        if svg:
            figures.append({"key": key, "svg": svg, "caption": title})
    shown = {f["key"]: f["svg"] for f in figures}
    return {"kind": "load", "host": str(result.get("host", "")), "numbers": numbers, "scenario": scenario,
            "target": threshold.label if threshold else "", "figures": figures,
            "time_chart": shown.get("time_chart"), "dist_chart": shown.get("dist_chart"),
            "rate_chart": shown.get("rate_chart"),
            "status_codes": [(str(k), v) for k, v in (result.get("status_codes") or {}).items()],
            "errors": [(str(k), v) for k, v in (result.get("errors") or {}).items()]}


def _scenario(names: object, merged: object, lang: str) -> str:
    """The requests a load target names ("patient-search-name + patient-search-identifier"), else all."""
    if merged != AGGREGATED and isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return " + ".join(names)
    return t("chart_all_requests", lang)


def _threshold(judged: dict, lang: str) -> charts.Threshold | None:
    """The target a load outcome was judged against, in the unit of its chart: ms, % or requests per second."""
    metric, op, value = judged.get("metric"), judged.get("op"), judged.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not isinstance(op, str):
        return None
    if metric == "latency":
        shown, what, unit = float(value), str(judged.get("aggregation") or ""), " ms"
    elif metric == "error_rate":
        shown, what, unit = 100 * float(value), t("chart_error_rate", lang), " %"
    elif metric == "throughput":
        shown, what, unit = float(value), "", " " + t("chart_rps_unit", lang)
    else:
        return None
    label = t("chart_target", lang, what=what, op=op, value=f"{shown:g}{unit}")
    return charts.Threshold(shown, " ".join(label.split()))
