"""CDA benchmark: the ANS's example documents checked as the ci-sis and cda-r2 profiles do (hardened parse, CDA
XML Schema, volet detection, the volet's schematron and the shared profiles on Saxon-HE), without pytest around
them; compile time of the schematrons cold (ISO skeleton + Saxon) and warm (the XSLT from the disk cache), and
documents per second once compiled.

    python benchmarks/cda.py --content ../shared/data/ci-sis [--json]

The content is recorded in a temporary package cache (as `vigie packages add-cisis` does), so the cold figures
start from nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(content_dir: Path) -> dict:
    from vigie.cda.content import add_content
    from vigie.cda.document import clinical_text, read_document
    from vigie.cda.schema import schema_errors
    from vigie.cda.schematron import Schematrons
    from vigie.cda.volets import SHARED, detect
    from vigie.errors import ObservationError

    with tempfile.TemporaryDirectory(prefix="vigie-cda-bench-") as work:
        os.environ["FHIR_PACKAGE_CACHE"] = work
        started = time.monotonic()
        content = add_content(content_dir)
        add_s = time.monotonic() - started
        files = sorted((content_dir / "ExemplesCDA").glob("*.xml"))
        docs = [read_document(f) for f in files]
        volets = {d.name: detect(d.clinical, content.schematrons) for d in docs}
        needed = sorted({c for v in volets.values() if v for c in v.candidates} | set(SHARED))

        cold = Schematrons(content, Path(work) / "compiled")
        cpu, wall = time.process_time(), time.monotonic()
        unusable = []
        for relative in needed:
            try:
                cold.executable(relative)
            except ObservationError as exc:
                unusable.append(f"{relative}: {exc}")
        cold_s, cold_cpu = time.monotonic() - wall, time.process_time() - cpu

        warm = Schematrons(content, Path(work) / "compiled")
        wall = time.monotonic()
        for relative in needed:
            try:
                warm.executable(relative)
            except ObservationError:
                pass
        warm_s = time.monotonic() - wall

        cpu, wall = time.process_time(), time.monotonic()
        assertions = 0
        for doc in docs:
            schema_errors(content.xsd, doc.clinical)
            volet = volets[doc.name]
            xml = clinical_text(doc)
            for relative in [*(volet.candidates[:1] if volet else ()), *SHARED]:
                try:
                    assertions += len(warm.validate(relative, xml))
                except ObservationError:
                    pass
        run_s, run_cpu = time.monotonic() - wall, time.process_time() - cpu
        return {"documents": len(docs), "schematrons": len(needed), "unusable": unusable,
                "add_content_s": round(add_s, 2),
                "compile_cold_s": round(cold_s, 2), "compile_cold_cpu_s": round(cold_cpu, 2),
                "compile_warm_s": round(warm_s, 2),
                "compile_cold_per_schematron_s": {k: v for k, v in sorted(cold.timings.items())},
                "validate_s": round(run_s, 2), "validate_cpu_s": round(run_cpu, 2),
                "documents_per_s": round(len(docs) / run_s, 2),
                "documents_per_cpu_s": round(len(docs) / run_cpu, 2) if run_cpu else None,
                "findings": assertions,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                           f"load {os.getloadavg()[0]:.1f}, CPython {platform.python_version()}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=ROOT.parent / "shared" / "data" / "ci-sis")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.content)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        slowest = sorted(result["compile_cold_per_schematron_s"].items(), key=lambda kv: -kv[1])[:3]
        print(f"{result['documents']} documents, {result['schematrons']} schematrons ({len(result['unusable'])} "
              f"unusable in this content)")
        print(f"compile cold: {result['compile_cold_s']} s (CPU {result['compile_cold_cpu_s']} s); slowest: "
              + ", ".join(f"{k} {v} s" for k, v in slowest))
        print(f"compile warm (XSLT from the disk cache): {result['compile_warm_s']} s")
        print(f"validate: {result['validate_s']} s, {result['documents_per_s']} documents/s "
              f"({result['documents_per_cpu_s']} per CPU second); {result['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
