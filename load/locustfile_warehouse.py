"""Load scenario for an OMOP CDM warehouse: analysts running standard cohort queries at the same time.

Each user holds one read-only connection (vigie.warehouse.session) and runs, in turn, the queries of a
small cohort study, each one a request name that load targets refer to:

| request name                | what it computes                                                           |
|-----------------------------|----------------------------------------------------------------------------|
| demographics                | persons by gender and decade of birth                                      |
| t2dm-cohort                 | persons with type 2 diabetes (201826 or a descendant), first diagnosis     |
|                             | inside an observation period, with their age at that date                  |
| metformin-after-t2dm        | of them, those exposed to metformin (1503297 or a descendant) afterwards   |
| hypertension-incidence      | first essential hypertension diagnosis (320128) per year                   |
| visits-by-type              | visits per visit concept and year                                          |
| high-systolic-bp            | persons with a systolic blood pressure (3004249) over 140 mm Hg            |

Concept sets follow the OHDSI habit: the concept and its descendants in concept_ancestor. Database drivers
block, so queries run in gevent's thread pool: the users' queries really overlap in the database.

Run by vigie's load driver in its own process; VIGIE_LOAD_URL is the warehouse's database URL (passed
in the environment, never on a command line), VIGIE_LOAD_MIX sets task weights by request name.
"""
import json
import os
import time
from dataclasses import replace
from typing import ClassVar

import gevent
from locust import User, between

from vigie.limits import activate, current
from vigie.warehouse.session import Session

URL = os.environ.get("VIGIE_LOAD_URL") or ""
# each user opens its own database engine in the load process (DuckDB: a buffer pool of 96 MB, not the 1 GiB
# of a run's single session, its working memory and threads besides): room the load driver adds to its memory
# ceiling per user (vigie/load/process.py)
VIGIE_MEMORY_PER_USER_MB = 192
activate(replace(current(), engine_memory=96_000_000))
MIX = json.loads(os.environ.get("VIGIE_LOAD_MIX") or "{}")

T2DM, METFORMIN, HYPERTENSION, SYSTOLIC = 201826, 1503297, 320128, 3004249


def concept_set(t, concept: int) -> str:
    return (f"(SELECT {concept} UNION SELECT descendant_concept_id FROM {t('concept_ancestor')} "
            f"WHERE ancestor_concept_id = {concept})")


def first_diagnosis(t, concept: int) -> str:
    """Each person's first diagnosis of the concept set, kept when inside one of their observation periods."""
    return f"""SELECT c.person_id, MIN(c.condition_start_date) AS index_date
        FROM {t('condition_occurrence')} c
        WHERE c.condition_concept_id IN {concept_set(t, concept)}
        GROUP BY c.person_id"""


def queries(t) -> dict[str, str]:
    t2dm = f"""SELECT d.person_id, d.index_date FROM ({first_diagnosis(t, T2DM)}) d
        JOIN {t('observation_period')} op ON op.person_id = d.person_id
         AND d.index_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date"""
    return {
        "demographics": f"""SELECT gender_concept_id, (year_of_birth / 10) * 10 AS decade, COUNT(*) AS persons
            FROM {t('person')} GROUP BY gender_concept_id, (year_of_birth / 10) * 10 ORDER BY 1, 2""",
        "t2dm-cohort": f"""SELECT COUNT(*) AS persons,
                AVG(EXTRACT(YEAR FROM cohort.index_date) - p.year_of_birth) AS mean_age_at_index
            FROM ({t2dm}) cohort JOIN {t('person')} p ON p.person_id = cohort.person_id""",
        "metformin-after-t2dm": f"""SELECT COUNT(DISTINCT cohort.person_id) AS persons
            FROM ({t2dm}) cohort JOIN {t('drug_exposure')} de ON de.person_id = cohort.person_id
            WHERE de.drug_concept_id IN {concept_set(t, METFORMIN)}
              AND de.drug_exposure_start_date >= cohort.index_date""",
        "hypertension-incidence": f"""SELECT EXTRACT(YEAR FROM index_date) AS year, COUNT(*) AS new_cases
            FROM ({first_diagnosis(t, HYPERTENSION)}) d GROUP BY EXTRACT(YEAR FROM index_date) ORDER BY 1""",
        "visits-by-type": f"""SELECT visit_concept_id, EXTRACT(YEAR FROM visit_start_date) AS year, COUNT(*)
            FROM {t('visit_occurrence')} GROUP BY visit_concept_id, EXTRACT(YEAR FROM visit_start_date)
            ORDER BY 1, 2""",
        "high-systolic-bp": f"""SELECT COUNT(DISTINCT person_id) AS persons, AVG(value_as_number) AS mean_value
            FROM {t('measurement')} WHERE measurement_concept_id IN {concept_set(t, SYSTOLIC)}
              AND value_as_number > 140""",
    }


class Answer:
    """What a query returned; not an HTTP response, so the driver counts it as an answer of the target."""

    def __init__(self, rows: int):
        self.rows = rows


class CohortUser(User):
    wait_time = between(0.05, 0.2)
    WEIGHTS: ClassVar[dict] = {"demographics": 1, "t2dm-cohort": 2, "metformin-after-t2dm": 2,
                               "hypertension-incidence": 1, "visits-by-type": 1, "high-systolic-bp": 1}

    def on_start(self):
        self.session = gevent.get_hub().threadpool.apply(Session(URL).connect, (True,))
        self.sql = queries(self.session.table)

    def on_stop(self):
        session = getattr(self, "session", None)
        if session is not None:
            session.close()

    def query(self, name: str) -> None:
        started, rows, error, answered = time.perf_counter(), 0, None, True
        try:
            rows = len(gevent.get_hub().threadpool.apply(self.session.rows, (self.sql[name], False)))
        except Exception as exc:  # noqa: BLE001 - a failed query is a measured failure, not a crash
            error = exc
            answered = "query failed" in str(exc)  # the database answered with an error
        self.environment.events.request.fire(
            request_type="SQL", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=rows, exception=error, context={}, response=Answer(rows) if answered else None)


def _task(name: str):
    def task(user: CohortUser) -> None:
        user.query(name)
    task.__name__ = name.replace("-", "_")
    return task


CohortUser.tasks = {_task(n): MIX.get(n, w) for n, w in CohortUser.WEIGHTS.items() if MIX.get(n, w) > 0}

_unknown = sorted(set(MIX) - set(CohortUser.WEIGHTS))
if _unknown:
    raise ValueError(f"load mix names unknown tasks {', '.join(_unknown)} (known: {', '.join(CohortUser.WEIGHTS)})")
