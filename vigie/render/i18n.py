"""User-facing labels of the renderings, in English and French.

One table so that a label missing in one language is caught by the tests rather than shown blank
to a reviewer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup

LANGS = ("en", "fr")

STATUSES = ("passed", "failed", "error", "skipped", "not_applicable", "not_tested")
VERDICTS = ("conformant", "conformant-with-reservations", "non-conformant", "incomplete", "not_applicable")
LEVELS = ("SHALL", "SHOULD", "MAY")

_LABELS: dict[str, dict[str, str]] = {
    # French puts a no-break space before a colon
    "colon": {"en": ":", "fr": "\u00a0:"},
    "report_title": {"en": "Conformance report", "fr": "Rapport de conformité"},
    "overall_verdict": {"en": "Overall verdict", "fr": "Verdict global"},
    "run": {"en": "Run", "fr": "Exécution"},
    "run_id": {"en": "Run id", "fr": "Identifiant d'exécution"},
    "started": {"en": "Started", "fr": "Début"},
    "finished": {"en": "Finished", "fr": "Fin"},
    "not_finished": {"en": "not finished", "fr": "non terminée"},
    "tool_version": {"en": "vigie version", "fr": "Version de vigie"},
    "suite_digest": {"en": "Suite digest", "fr": "Empreinte de la suite"},
    "command": {"en": "Command", "fr": "Commande"},
    "run_incomplete": {
        "en": "This run stopped before every selected requirement had an outcome: the results below are partial.",
        "fr": "Cette exécution s'est arrêtée avant que chaque exigence sélectionnée ait un résultat : "
        "les résultats ci-dessous sont partiels.",
    },
    "run_interrupted": {
        "en": "This run was interrupted ({signal}) before every selected requirement had an outcome: the "
        "requirements not reached are not tested, the results below are partial.",
        "fr": "Cette exécution a été interrompue ({signal}) avant que chaque exigence sélectionnée ait un "
        "résultat : les exigences non atteintes sont non testées, les résultats ci-dessous sont partiels.",
    },
    "interrupted": {"en": "interrupted ({signal})", "fr": "interrompue ({signal})"},
    "contents": {"en": "Contents", "fr": "Sommaire"},
    "targets": {"en": "Targets", "fr": "Cibles"},
    "targets_caption": {"en": "Systems under test", "fr": "Systèmes évalués"},
    "target": {"en": "Target", "fr": "Cible"},
    "kind": {"en": "Kind", "fr": "Type"},
    "url": {"en": "Address", "fr": "Adresse"},
    "summary": {"en": "Summary", "fr": "Synthèse"},
    "summary_caption": {
        "en": "Verdict and number of outcomes per status, for each profile",
        "fr": "Verdict et nombre de résultats par statut, pour chaque profil",
    },
    "profile": {"en": "Profile", "fr": "Profil"},
    "version": {"en": "Version", "fr": "Version"},
    "verdict": {"en": "Verdict", "fr": "Verdict"},
    "total": {"en": "Total", "fr": "Total"},
    "source": {"en": "Source", "fr": "Source"},
    "published": {"en": "published", "fr": "publié le"},
    "profile_digest": {"en": "Profile digest", "fr": "Empreinte du profil"},
    "requirements_caption": {
        "en": "Requirements of profile {profile} and their outcome per target",
        "fr": "Exigences du profil {profile} et leur résultat par cible",
    },
    "requirement": {"en": "Requirement", "fr": "Exigence"},
    "level": {"en": "Level", "fr": "Niveau"},
    "title": {"en": "Title", "fr": "Intitulé"},
    "check": {"en": "Check", "fr": "Contrôle"},
    "status": {"en": "Status", "fr": "Statut"},
    "result": {"en": "Result", "fr": "Résultat"},
    "details": {"en": "Details", "fr": "Détails"},
    "messages": {"en": "Messages", "fr": "Messages"},
    "measurements": {"en": "Measurements", "fr": "Mesures"},
    "reference": {"en": "Reference", "fr": "Référence"},
    "evidence": {"en": "Evidence", "fr": "Preuves"},
    "no_evidence": {"en": "No evidence recorded.", "fr": "Aucune preuve enregistrée."},
    "excerpt_of": {"en": "Excerpt of {path}", "fr": "Extrait de {path}"},
    "excerpt_shown_with": {"en": "excerpt shown with {where}", "fr": "extrait affiché avec {where}"},
    "excerpt_truncated": {
        "en": "First {shown} of {total} lines; the whole file is in the bundle.",
        "fr": "{shown} premières lignes sur {total} ; le fichier complet est dans le lot.",
    },
    "duration": {"en": "Duration", "fr": "Durée"},
    "attestation_check": {"en": "attestation", "fr": "attestation"},
    "not_tested_heading": {"en": "Requirements not tested", "fr": "Exigences non testées"},
    "not_tested_intro": {
        "en": "No check produced an outcome for these requirements in this run. They remain to be verified; "
        "a SHALL requirement among them makes its profile incomplete.",
        "fr": "Aucun contrôle n'a produit de résultat pour ces exigences lors de cette exécution. Elles restent "
        "à vérifier ; une exigence de niveau EXIGÉ parmi elles rend son profil incomplet.",
    },
    "not_tested_caption": {
        "en": "Requirements without a tested outcome",
        "fr": "Exigences sans résultat testé",
    },
    "attestations_heading": {
        "en": "Requirements verified by attestation",
        "fr": "Exigences vérifiées sur attestation",
    },
    "attestations_intro": {
        "en": "No software can check these requirements (a hosting certificate, an organisational measure): "
        "they are verified from a document the vendor supplies, linked as evidence.",
        "fr": "Aucun logiciel ne peut contrôler ces exigences (certificat d'hébergement, mesure "
        "organisationnelle) : elles sont vérifiées sur un document fourni par l'éditeur, lié comme preuve.",
    },
    "attestations_caption": {
        "en": "Requirements verified from a vendor document",
        "fr": "Exigences vérifiées sur un document de l'éditeur",
    },
    "problems": {"en": "Failed or in error", "fr": "En échec ou en erreur"},
    "none": {"en": "None.", "fr": "Aucune."},
    "legend": {"en": "How to read this report", "fr": "Comment lire ce rapport"},
    "legend_statuses": {"en": "Statuses of an outcome", "fr": "Statuts d'un résultat"},
    "legend_verdicts": {
        "en": "Verdicts of a profile and of the run",
        "fr": "Verdicts d'un profil et de l'exécution",
    },
    "legend_levels": {"en": "Requirement levels", "fr": "Niveaux d'exigence"},
    "meaning": {"en": "Meaning", "fr": "Signification"},
    "legend_overall": {
        "en": "The overall verdict combines the verdicts of every profile of the campaign.",
        "fr": "Le verdict global combine les verdicts de tous les profils de la campagne.",
    },
    "generated_by": {
        "en": "Generated by vigie {version} from report.json. Evidence paths are relative to the report bundle.",
        "fr": "Généré par vigie {version} à partir de report.json. Les chemins des preuves sont relatifs au lot "
        "du rapport.",
    },
    # reproducibility and integrity
    "signer": {"en": "Signed with key", "fr": "Signé avec la clé"},
    "product": {"en": "Product under test", "fr": "Produit évalué"},
    "patient_data": {"en": "Patient data", "fr": "Données des patients"},
    "patient_data.masked": {
        "en": "masked in summaries, messages and evidence (NIR/INS, names, birth dates, contacts, addresses)",
        "fr": "masquées dans les résumés, messages et preuves (NIR/INS, noms, dates de naissance, coordonnées, "
        "adresses)",
    },
    "patient_data.as sent": {
        "en": "NOT MASKED: kept as the target sent them",
        "fr": "NON MASQUÉES : conservées telles que la cible les a envoyées",
    },
    "product_declared": {"en": "declared by the tester", "fr": "déclaré par l'évaluateur"},
    "product_from_capability": {
        "en": "not declared: as the CapabilityStatement of target {target} names its software",
        "fr": "non déclaré : tel que le CapabilityStatement de la cible {target} nomme son logiciel",
    },
    "product_not_declared": {
        "en": "not named (give --product and --product-version, or [product] in vigie.toml)",
        "fr": "non nommé (indiquer --product et --product-version, ou [product] dans vigie.toml)",
    },
    "not_signed": {"en": "not signed", "fr": "non signé"},
    "environment": {"en": "Environment", "fr": "Environnement"},
    "packages": {"en": "Software versions", "fr": "Versions des logiciels"},
    "fhir_packages": {"en": "FHIR packages", "fr": "Paquets FHIR"},
    # traceability
    "traceability": {"en": "Traceability matrix", "fr": "Matrice de traçabilité"},
    "traceability_intro": {
        "en": "Each requirement of each profile, the check that verified it, its outcome per target and the "
        "evidence behind it.",
        "fr": "Chaque exigence de chaque profil, le contrôle qui l'a vérifiée, son résultat par cible et les "
        "preuves qui le fondent.",
    },
    "traceability_caption": {
        "en": "Profile → requirement → check → outcome → evidence",
        "fr": "Profil → exigence → contrôle → résultat → preuves",
    },
    # evidence views
    "http_exchanges": {"en": "HTTP exchanges", "fr": "Échanges HTTP"},
    "request": {"en": "Request", "fr": "Requête"},
    "response": {"en": "Response", "fr": "Réponse"},
    "headers": {"en": "Headers", "fr": "En-têtes"},
    "body": {"en": "Body (excerpt)", "fr": "Corps (extrait)"},
    "body_cut": {"en": "cut; the whole body is in the evidence file", "fr": "tronqué ; le corps complet est dans le "
                 "fichier de preuve"},
    "no_response": {"en": "no response", "fr": "pas de réponse"},
    "more_exchanges": {"en": "{n} more exchanges in the evidence file.", "fr": "{n} autres échanges dans le "
                       "fichier de preuve."},
    "tls_scan": {"en": "TLS scan", "fr": "Analyse TLS"},
    "protocols": {"en": "Accepted protocols", "fr": "Protocoles acceptés"},
    "cipher_suites": {"en": "Cipher suites", "fr": "Suites de chiffrement"},
    "curves": {"en": "Key exchange groups", "fr": "Groupes d'échange de clés"},
    "certificate": {"en": "Certificate", "fr": "Certificat"},
    "tls_checks": {"en": "Other observations", "fr": "Autres observations"},
    "scan_errors": {"en": "Scan errors", "fr": "Erreurs d'analyse"},
    "load_stats": {"en": "Load statistics", "fr": "Statistiques de charge"},
    "status_codes": {"en": "HTTP statuses", "fr": "Statuts HTTP"},
    "load_errors": {"en": "Errors", "fr": "Erreurs"},
    "chart_latency_time": {"en": "Latency over time (p50, p95)", "fr": "Latence dans le temps (p50, p95)"},
    "chart_latency_dist": {"en": "Latency distribution", "fr": "Distribution des latences"},
    "chart_seconds": {"en": "seconds since start", "fr": "secondes depuis le début"},
    "chart_ms": {"en": "latency (ms)", "fr": "latence (ms)"},
    "chart_requests": {"en": "requests", "fr": "requêtes"},
    "chart_error_rate_time": {"en": "Error rate per second", "fr": "Taux d'erreur par seconde"},
    "chart_throughput_time": {"en": "Requests per second", "fr": "Requêtes par seconde"},
    "chart_percent": {"en": "failed requests (%)", "fr": "requêtes en échec (%)"},
    "chart_rps": {"en": "requests per second", "fr": "requêtes par seconde"},
    "chart_rps_unit": {"en": "req/s", "fr": "req/s"},
    "chart_error_rate": {"en": "error rate", "fr": "taux d'erreur"},
    # the threshold a load target is judged against, in the legend of its charts
    "chart_target": {"en": "target {what} {op} {value}", "fr": "cible {what} {op} {value}"},
    "chart_all_requests": {"en": "all requests", "fr": "toutes les requêtes"},
    "load.requests": {"en": "requests", "fr": "requêtes"},
    "load.failures": {"en": "failures", "fr": "échecs"},
    "load.users": {"en": "users", "fr": "utilisateurs"},
    "load.duration_s": {"en": "duration (s)", "fr": "durée (s)"},
    "load.rps": {"en": "requests per second", "fr": "requêtes par seconde"},
    "load.p50_ms": {"en": "p50 (ms)", "fr": "p50 (ms)"},
    "load.p95_ms": {"en": "p95 (ms)", "fr": "p95 (ms)"},
    "load.p99_ms": {"en": "p99 (ms)", "fr": "p99 (ms)"},
    "load.max_ms": {"en": "max (ms)", "fr": "max (ms)"},
    # PDF
    "certificate_title": {"en": "Conformance assessment report", "fr": "Rapport d'évaluation de conformité"},
    "page": {"en": "Page", "fr": "Page"},
    "of": {"en": "of", "fr": "sur"},
    "problem_details": {"en": "Failed or in error: details", "fr": "En échec ou en erreur : détails"},
    "pdf_disclaimer": {
        "en": "Produced by vigie, a self-assessment tool. This document is not a certificate issued by an "
        "accredited body; its integrity is checked with {command} on the signed report bundle.",
        "fr": "Produit par vigie, outil d'auto-évaluation. Ce document n'est pas un certificat délivré par un "
        "organisme accrédité ; son intégrité se vérifie avec {command} sur le lot de rapport signé.",
    },
    # findings first (HTML and PDF)
    "findings": {"en": "Findings", "fr": "Constats"},
    "findings_intro": {
        "en": "What failed or could not be verified, by weight on the verdict: SHALL before SHOULD and MAY, "
        "failures before outcomes not verified. Each requirement links to its details and evidence.",
        "fr": "Ce qui a échoué ou n'a pas pu être vérifié, par poids sur le verdict : EXIGÉ avant RECOMMANDÉ et "
        "FACULTATIF, les échecs avant les résultats non vérifiés. Chaque exigence mène à ses détails et "
        "preuves.",
    },
    "findings_caption": {
        "en": "Requirements that failed or could not be verified",
        "fr": "Exigences en échec ou non vérifiées",
    },
    "findings_none": {
        "en": "No requirement failed and none is left unverified.",
        "fr": "Aucune exigence n'a échoué et aucune ne reste à vérifier.",
    },
    "reason": {"en": "Reason", "fr": "Motif"},
    "finding_details": {"en": "Findings in detail", "fr": "Constats en détail"},
    "decisive_evidence": {"en": "Decisive evidence", "fr": "Preuve déterminante"},
    "on_page": {"en": "p.", "fr": "p."},
    "charts": {"en": "Charts", "fr": "Graphiques"},
    "chart_outcomes": {"en": "Outcomes per profile", "fr": "Résultats par profil"},
    "load_run_on": {"en": "Load run on {host}", "fr": "Charge sur {host}"},
    "header_absent": {"en": "absent", "fr": "absent"},
    "valid_until": {"en": "valid until {date}", "fr": "valable jusqu'au {date}"},
    "sql_rows": {"en": "{n} row(s)", "fr": "{n} ligne(s)"},
    "unaudited": {"en": "not audited", "fr": "non audités"},
    "date": {"en": "{day} {month} {year}, {hour}:{minute} UTC", "fr": "{day} {month} {year}, {hour} h {minute} UTC"},
    "months": {
        "en": "January February March April May June July August September October November December",
        "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    },
    # levels as the report's language names them (French keeps the RFC 2119 word, which profiles cite)
    "level.SHALL": {"en": "SHALL", "fr": "EXIGÉ (SHALL)"},
    "level.SHOULD": {"en": "SHOULD", "fr": "RECOMMANDÉ (SHOULD)"},
    "level.MAY": {"en": "MAY", "fr": "FACULTATIF (MAY)"},
    # statuses
    "status.passed": {"en": "passed", "fr": "réussi"},
    "status.failed": {"en": "failed", "fr": "échoué"},
    "status.error": {"en": "error", "fr": "erreur"},
    "status.skipped": {"en": "skipped", "fr": "ignoré"},
    "status.not_applicable": {"en": "not applicable", "fr": "non applicable"},
    "status.not_tested": {"en": "not tested", "fr": "non testé"},
    "status_desc.passed": {
        "en": "The check ran and the requirement is met on this target.",
        "fr": "Le contrôle a été exécuté et l'exigence est satisfaite sur cette cible.",
    },
    "status_desc.failed": {
        "en": "The check ran and the requirement is not met on this target; the summary says why.",
        "fr": "Le contrôle a été exécuté et l'exigence n'est pas satisfaite sur cette cible ; le résumé dit "
        "pourquoi.",
    },
    "status_desc.error": {
        "en": "The check could not finish (the target could not be observed, or the check itself broke): "
        "the requirement is neither confirmed nor refuted.",
        "fr": "Le contrôle n'a pas pu aboutir (la cible n'a pas pu être observée, ou le contrôle a échoué "
        "lui-même) : l'exigence n'est ni confirmée ni infirmée.",
    },
    "status_desc.skipped": {
        "en": "Reports of vigie before 0.2 only: the check did not run; counted as not verified.",
        "fr": "Rapports de vigie antérieurs à 0.2 seulement : le contrôle n'a pas été exécuté ; compté comme "
        "non vérifié.",
    },
    "status_desc.not_applicable": {
        "en": "The requirement does not apply to this target, for the reason given.",
        "fr": "L'exigence ne s'applique pas à cette cible, pour la raison indiquée.",
    },
    "status_desc.not_tested": {
        "en": "Not verified in this run, for the reason given (configuration missing, such as a token role; "
        "an attestation not supplied; the run stopped first): it remains to be verified.",
        "fr": "Non vérifiée lors de cette exécution, pour la raison indiquée (configuration manquante, comme "
        "le jeton d'un rôle ; attestation non fournie ; exécution arrêtée avant) : elle reste à vérifier.",
    },
    # verdicts
    "verdict.conformant": {"en": "conformant", "fr": "conforme"},
    "verdict.conformant-with-reservations": {
        "en": "conformant with reservations",
        "fr": "conforme avec réserves",
    },
    "verdict.non-conformant": {"en": "non-conformant", "fr": "non conforme"},
    "verdict.incomplete": {"en": "incomplete", "fr": "incomplet"},
    "verdict.not_applicable": {"en": "not applicable", "fr": "non applicable"},
    "verdict_desc.conformant": {
        "en": "Every applicable SHALL and SHOULD requirement was observed and passed.",
        "fr": "Toutes les exigences applicables de niveau EXIGÉ ou RECOMMANDÉ ont été observées et sont "
        "satisfaites.",
    },
    "verdict_desc.conformant-with-reservations": {
        "en": "Every applicable SHALL requirement passed, but at least one SHOULD requirement failed or could "
        "not be verified.",
        "fr": "Toutes les exigences applicables de niveau EXIGÉ sont satisfaites, mais au moins une exigence "
        "de niveau RECOMMANDÉ a échoué ou n'a pas pu être vérifiée.",
    },
    "verdict_desc.non-conformant": {
        "en": "At least one SHALL requirement failed.",
        "fr": "Au moins une exigence de niveau EXIGÉ a échoué.",
    },
    "verdict_desc.not_applicable": {
        "en": "No requirement concerns this target, for the reasons observed: nothing was verified.",
        "fr": "Aucune exigence ne concerne cette cible, pour les raisons observées : rien n'a été vérifié.",
    },
    "verdict_desc.incomplete": {
        "en": "No SHALL requirement failed, but at least one ended in error or was not tested: conformance "
        "cannot be concluded.",
        "fr": "Aucune exigence de niveau EXIGÉ n'a échoué, mais au moins une s'est terminée en erreur ou n'a "
        "pas été testée : la conformité ne peut pas être établie.",
    },
    # levels
    "level_desc.SHALL": {
        "en": "Mandatory: a failure makes the profile non-conformant.",
        "fr": "Obligatoire : un échec rend le profil non conforme.",
    },
    "level_desc.SHOULD": {
        "en": "Recommended: a failure is recorded as a reservation.",
        "fr": "Recommandé : un échec est consigné comme une réserve.",
    },
    "level_desc.MAY": {
        "en": "Optional: reported for information, without effect on the verdict.",
        "fr": "Facultatif : signalé pour information, sans effet sur le verdict.",
    },
}


# English notes that profile references carry (how far a citation was checked), as the report's language says
# them; longest first, so that a phrase is not half-translated by a shorter one
REFERENCE_PHRASES = {
    "fr": (("section numbering unverified", "numérotation des sections non vérifiée"),
           ("numbering unverified", "numérotation non vérifiée"),
           ("unverified against the official text", "non vérifié sur le texte officiel"),
           ("unverified section", "section non vérifiée")),
}


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
    return lang


def t(key: str, lang: str, **fields: object) -> str:
    """The label `key` in `lang`, with `{field}` placeholders filled from `fields`."""
    check_lang(lang)
    text = _LABELS[key][lang]
    return text.format(**fields) if fields else text


def localized(value: object, lang: str) -> str:
    """A report text that is either a plain string or one string per language (falls back to English)."""
    if isinstance(value, dict):
        for key in (lang, "en", *value):
            if value.get(key):
                return str(value[key])
        return ""
    return "" if value is None else str(value)


def labels() -> dict[str, dict[str, str]]:
    """Every label (a copy), for tests and for other renderers."""
    return {key: dict(texts) for key, texts in _LABELS.items()}


def product_text(product: object, lang: str) -> str:
    """The product under test in one line: name, version and commit, and where the name comes from."""
    product = product if isinstance(product, dict) else {}
    name = " ".join(str(product[k]) for k in ("name", "version") if product.get(k))
    if product.get("commit"):
        name += f" (commit {product['commit']})"
    if not name:
        return t("product_not_declared", lang)
    if product.get("source") == "declared":
        return f"{name} — {t('product_declared', lang)}"
    return f"{name} — {t('product_from_capability', lang, target=product.get('target', '?'))}"


def level_text(level: object, lang: str) -> str:
    """A requirement level as the report's language names it ("EXIGÉ (SHALL)"); an unknown one as it is."""
    return t(f"level.{level}", lang) if level in LEVELS else str(level or "")


def reference_text(reference: object, lang: str) -> str:
    """A profile's reference with its English verification notes in the report's language."""
    text = "" if reference is None else str(reference)
    for english, translated in REFERENCE_PHRASES.get(lang, ()):
        text = text.replace(english, translated)
    return text


def date_text(value: object, lang: str) -> str:
    """An ISO 8601 instant as a reader of `lang` writes it, in UTC ("3 décembre 2026, 10 h 21 UTC");
    a value that is not such an instant is shown as it is."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return "" if value is None else str(value)
    if moment.tzinfo is not None:  # a naive instant is vigie's own UTC
        moment = moment.astimezone(UTC)
    day = "1er" if lang == "fr" and moment.day == 1 else str(moment.day)
    return t("date", lang, day=day, month=t("months", lang).split()[moment.month - 1], year=moment.year,
             hour=f"{moment.hour:02d}", minute=f"{moment.minute:02d}")


def markup(key: str, lang: str, **fields: object) -> Markup:
    """The label `key` as HTML: its text escaped, `fields` escaped too unless they are Markup themselves
    (a command in <code>, never in literal backticks)."""
    return Markup.escape(t(key, lang)).format(**fields) if fields else Markup.escape(t(key, lang))
