"""Finding English left in a French report: lowercase English words that French never writes, outside what
a sentence quotes (URLs, paths, quoted values, code, hyphenated names such as must-support or alg-none)."""
import re

# words no French sentence holds (a value quoted from a target may: it is removed first)
ENGLISH = frozenset([
    "the", "of", "is", "are", "was", "were", "not", "with", "without", "and", "for", "from", "by", "which",
    "that", "has", "have", "does", "did", "none", "every", "each", "than", "within", "after", "before",
    "answered", "returned", "found", "could", "should", "must", "missing", "only", "any", "but", "when",
    "where", "this", "these", "those", "their", "its", "been", "being", "into", "over", "under", "between"])
_QUOTED = re.compile(r"""\S*://\S*|\S*/\S*|'[^']*'|"[^"]*"|`[^`]*`|«[^»]*»|\S*[=<>{}\[\]@#_]\S*|\S*\w-\w\S*""")
_WORD = re.compile(r"[^\W\d_]+")


def english_words(text: str) -> list[str]:
    """The English words of `text` once its quoted values are set aside."""
    return [w for w in _WORD.findall(_QUOTED.sub(" ", text)) if w in ENGLISH]


def english_sentences(report: dict) -> list[tuple[str, str]]:
    """(requirement, sentence) for each summary or message of the report's outcomes, rendered in French, that
    still reads as English."""
    from vigie.messages import translate
    found = []
    for o in report["outcomes"]:
        for text in [o.get("summary") or "", *map(str, o.get("messages") or [])]:
            french = translate(text, "fr")
            if english_words(french):
                found.append((o["requirement"], french))
    return found
