"""Robustness: what a bounded fuzzing run (vigie.fuzz) provoked. One run per target serves every requirement."""
from vigie.checks import check, failed, passed, undetermined

WHAT = {
    "server-error": "answers with a server error (5xx) or no answer",
    "not-operation-outcome": "errors without an OperationOutcome",
    "disclosure": "bodies disclosing internals (stack trace, SQL error, source path)",
    "injection": "injection payloads executed or reflected",
}


@check("robust.fuzz")
def test_fuzzing_finds_nothing(requirement, observe, outcome):
    kind = requirement.params["finding"]
    run = observe("fuzz")
    found = run.of_kind(kind)
    unreached = run.unreached()
    outcome.measure(requests=run.requests, generated_examples=run.examples, statuses=run.statuses,
                    findings=len(found), unreached=unreached)
    for finding in found[:5]:
        outcome.message(f"{finding.detail}: {finding.curl}")
    if found:
        failed(f"{len(found)} {WHAT[kind]} in {run.requests} requests; first: {found[0].detail} "
               f"({found[0].method} {found[0].url[:200]})")
    if not run.answers:
        undetermined("the fuzzing run sent no request: the CapabilityStatement declares no search or read to "
                     "fuzz")
    if unreached:
        listed = [f"{op} ({t['refused']} of {t['sent']} refused)" for op, t in sorted(unreached.items())]
        undetermined(f"{len(unreached)} of {len(run.answers)} operations were mostly refused (401/403), so not "
                     "fuzzed: " + ", ".join(listed[:6]) + (", ..." if len(listed) > 6 else ""))
    passed(f"no {WHAT[kind]} in {run.requests} requests to {len(run.answers)} operations "
           f"({run.examples} generated)")
