"""The load charts: one per judged target, of the requests it names, with its threshold drawn; and labels
that a reader can read: their boxes, as headless Chromium lays the SVG out, never overlap."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from itertools import combinations

import pytest

from vigie.render import charts
from vigie.render.evidence_view import view

SVG = "{http://www.w3.org/2000/svg}"


def named_evidence(threshold: dict | None, scenario=("slot-search",)) -> dict:
    """Load evidence as load/test_load.py writes it for one target (`threshold` None: a whole run's)."""
    timeseries = [{"t": 1000 + i, "rps": 20, "failures_per_s": i % 3, "users": 5, "p50": 12 + i, "p95": 40 + 5 * i}
                  for i in range(10)]
    evidence = {"host": "https://127.0.0.1:8443/fhir", "users": 5, "duration_s": 10.0, "aborted": None,
                "aggregated": {"count": 200, "failures": 10, "max": 95.0,
                               "response_times": {"3": 50, "12": 100, "40": 45, "95": 5}},
                "timeseries": timeseries, "errors": {}}
    if threshold is not None:
        evidence |= {"scenario": list(scenario), "threshold": threshold}
    return evidence


def threshold_lines(svg: str) -> list[ET.Element]:
    return [e for e in ET.fromstring(svg).iter(f"{SVG}line") if e.get("class") == "threshold"]


def texts(svg: str) -> list[str]:
    return [e.text for e in ET.fromstring(svg).iter(f"{SVG}text")]


def test_a_latency_target_draws_its_threshold_on_its_scenario():
    shown = view(named_evidence({"metric": "latency", "aggregation": "p95", "op": "<", "value": 1000}), "en")
    assert shown["scenario"] == "slot-search" and shown["target"] == "target p95 < 1000 ms"
    assert [f["key"] for f in shown["figures"]] == ["time_chart", "dist_chart"]
    time_chart, dist_chart = shown["time_chart"], shown["dist_chart"]
    for svg in (time_chart, dist_chart):
        assert "— slot-search" in ET.fromstring(svg).find(f"{SVG}title").text
        assert "target p95 < 1000 ms" in texts(svg)                      # named in the legend
    (line,) = threshold_lines(time_chart)   # horizontal, at 1000 on an axis that reaches it
    assert line.get("y1") == line.get("y2") and "1k" in texts(time_chart)
    top = charts.TOP + charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert float(line.get("y1")) == pytest.approx(charts.TOP, abs=0.1) and float(line.get("y1")) < top
    (line,) = threshold_lines(dist_chart)   # vertical, at the 1k edge: the bins reach the threshold
    slot = (charts.WIDTH - charts.LEFT - charts.RIGHT) / 11
    assert line.get("x1") == line.get("x2") and float(line.get("x1")) == pytest.approx(charts.LEFT + 10 * slot, abs=0.1)
    assert shown["rate_chart"] is None


def test_an_error_rate_and_a_throughput_target_get_their_own_chart_and_line():
    shown = view(named_evidence({"metric": "error_rate", "aggregation": "rate", "op": "<", "value": 0.01}), "fr")
    assert shown["target"] == "cible taux d'erreur < 1 %"
    assert [f["key"] for f in shown["figures"]] == ["time_chart", "dist_chart", "rate_chart"]
    assert not threshold_lines(shown["time_chart"]) and not threshold_lines(shown["dist_chart"])
    (line,) = threshold_lines(shown["rate_chart"])
    root = ET.fromstring(shown["rate_chart"])
    (series,) = [p for p in root.iter(f"{SVG}polyline")]
    assert len(series.get("points").split()) == 10                    # one point per second: 0, 5, 10 % ...
    assert "Taux d'erreur par seconde — slot-search" == root.find(f"{SVG}title").text
    assert float(line.get("y1")) > charts.TOP                            # 1 %, below the 10 % peaks
    shown = view(named_evidence({"metric": "throughput", "aggregation": "rate", "op": ">=", "value": 15},
                                scenario=("patient-read", "patient-search-name")), "en")
    assert shown["target"] == "target >= 15 req/s" and shown["scenario"] == "patient-read + patient-search-name"
    assert len(threshold_lines(shown["rate_chart"])) == 1


def test_a_whole_run_is_drawn_for_all_requests_without_a_threshold():
    shown = view(named_evidence(None), "en")
    assert shown["scenario"] == "all requests" and shown["target"] == ""
    assert all(not threshold_lines(f["svg"]) for f in shown["figures"]) and len(shown["figures"]) == 2
    # a threshold the evidence cannot state (no value, an unknown metric) is not drawn
    for judged in ({"metric": "latency", "op": "<"}, {"metric": "cpu", "op": "<", "value": 3}, "p95<1"):
        shown = view(named_evidence(judged), "en")
        assert shown["target"] == "" and all(not threshold_lines(f["svg"]) for f in shown["figures"])


def test_histogram_labels_are_the_bin_edges_in_short_form():
    histogram = {"0.4": 1, "3": 5, "40": 2, "1200": 1, "25000": 3}
    svg = charts.latency_distribution(histogram, "d", "ms", "n")
    labels = texts(svg)
    for edge in ("0", "1", "2", "5", "10", "1k", "2k", "5k", "10k+"):
        assert edge in labels
    assert not any("–" in label for label in labels)                     # no range wider than its bin
    assert charts.bin_label(10) == "1k–2k" and charts.bin_label(13) == "≥10k"
    assert [c for _, c in charts.histogram_bins(histogram)][-1] == 3 and len(charts.histogram_bins(histogram)) == 14


# --- in a real browser: no two labels of a chart overlap --------------------------------------------------


def worst_cases() -> list[str]:
    """Charts with every bin filled, counts of seven digits, long runs, big latencies, French labels."""
    every_bin = {str(edge): n for edge, n in zip(charts.EDGES, (9, 1234567, 99999, 5, 888888, 12, 7654321, 3,
                                                                  45678, 1, 999, 2345678, 10, 6))}
    long_run = [{"t": i, "rps": 900 + i % 7, "failures_per_s": i % 11, "p50": 800 + i, "p95": 9000 + 3 * i}
                for i in range(0, 3600, 10)]
    latency = charts.Threshold(10000, "target p99 < 10000 ms")
    french = charts.Threshold(1.5, "cible taux d'erreur < 1.5 %")
    return [charts.latency_distribution(every_bin, "d", "latence (ms)", "requêtes", latency),
            charts.latency_distribution({"0.2": 3, "7": 4}, "d", "latency (ms)", "requests",
                                        charts.Threshold(2000, "target p95 < 2000 ms")),
            charts.latency_over_time(long_run, "t", "secondes depuis le début", "latence (ms)", latency),
            charts.error_rate_over_time(long_run, "e", "secondes depuis le début", "requêtes en échec (%)", french),
            charts.throughput_over_time(long_run, "r", "seconds since start", "requests per second",
                                        charts.Threshold(1000, "target >= 1000 req/s"))]


def test_chart_labels_never_overlap_in_chromium(tmp_path):
    from test_html_chromium import Browser  # headless Chromium over the DevTools protocol

    page = tmp_path / "charts.html"
    # the font of the report's charts (report.html.j2: svg.chart)
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><style>svg.chart { font-family: system-ui, '
                    '"DejaVu Sans", sans-serif; }</style></head><body>'
                    + "".join(f"<div>{svg}</div>" for svg in worst_cases()) + "</body></html>", encoding="utf-8")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        laid_out = browser.evaluate("""JSON.stringify([...document.querySelectorAll('svg.chart')].map(svg => {
            const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
            return {svg: box(svg), texts: [...svg.querySelectorAll('text')].map(t => [t.textContent, box(t)])};
        }))""")
    finally:
        browser.close()
    found = json.loads(laid_out)
    assert len(found) == len(worst_cases())
    for n, chart in enumerate(found):
        left, top, right, bottom = chart["svg"]
        assert len(chart["texts"]) >= 10, n
        for label, (x0, y0, x1, y1) in chart["texts"]:
            assert left <= x0 and x1 <= right and top <= y0 and y1 <= bottom, (n, label)
        for (a, (ax0, ay0, ax1, ay1)), (b, (bx0, by0, bx1, by1)) in combinations(chart["texts"], 2):
            assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, f"chart {n}: '{a}' overlaps '{b}'"


def test_the_html_report_shows_every_chart_of_a_target(tmp_path):
    """An error-rate target's own chart, with its threshold, is in the page beside the latency charts."""
    from vigie.render.html import render_html

    (tmp_path / "evidence" / "load").mkdir(parents=True)
    judged = {"metric": "error_rate", "aggregation": "rate", "op": "<", "value": 0.01}
    (tmp_path / "evidence" / "load" / "LOAD-02@practice.json").write_text(json.dumps(named_evidence(judged)))
    report = {"schema": "vigie-report/1", "run": {"id": "r", "started": "2026-01-01T00:00:00+00:00",
                                                   "tool_version": "0", "lang": "en"},
              "targets": [], "profiles": [], "verdict": "conformant",
              "outcomes": [{"requirement": "LOAD-02", "profile": "load-baseline", "level": "SHALL", "target": "practice",
                            "check": "load.target", "status": "passed", "summary": "",
                            "evidence": ["evidence/load/LOAD-02@practice.json"]}]}
    render_html(report, tmp_path / "report.html", "en", tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert html.count('class="chart"') == 3 and html.count('class="threshold"') == 1
    assert "<figcaption>Error rate per second — slot-search</figcaption>" in html
