"""Database URLs of warehouse targets: validation, the public form (no password), the secrets they carry."""
from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ..errors import VigieError
from ..evidence import strip_credentials

# vigie's own options in the URL's query, removed before the URL reaches the driver
OPTIONS = ("schema", "audit_log")
KNOWN = "duckdb, postgresql, sqlite, spark (Spark Connect), spark+local (a folder of Parquet/Delta tables)"


def _parse(url: str):
    try:
        return make_url(url)
    except ArgumentError:
        raise VigieError(f"'{public_url(url)}' is not a database URL (e.g. duckdb:///cdm.duckdb, "
                         f"postgresql://user@host/db, sqlite:///cdm.db)") from None


def check_url(url: str, where: str = "warehouse") -> str:
    """Raises a VigieError with one clear line unless the URL names a dialect SQLAlchemy can load."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "spark":   # run by pyspark, not SQLAlchemy (spark.py)
        if parsed.drivername not in ("spark", "spark+local"):
            raise VigieError(f"{where}: unknown Spark scheme '{parsed.drivername}' (spark://host:port for Spark "
                             "Connect, spark+local:///folder for a folder of tables)")
        if parsed.drivername == "spark+local" and not parsed.database:
            raise VigieError(f"{where}: '{public_url(url)}' names no folder of tables")
        if parsed.drivername == "spark" and not parsed.host:
            raise VigieError(f"{where}: '{public_url(url)}' names no Spark Connect host")
        return url
    try:
        driver_url(url).get_dialect()
    except NoSuchModuleError:
        raise VigieError(f"{where}: unknown database scheme '{parsed.drivername}' (known: {KNOWN}, "
                         f"or any installed SQLAlchemy dialect)") from None
    if parsed.get_backend_name() in ("duckdb", "sqlite") and not parsed.database:
        raise VigieError(f"{where}: '{public_url(url)}' names no database file")
    return url


def driver_url(url: str):
    """The SQLAlchemy URL to connect with: psycopg 3 for PostgreSQL, vigie's options removed."""
    parsed = _parse(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.difference_update_query(OPTIONS)


def option(url: str, name: str) -> str | None:
    value = _parse(url).query.get(name)
    return value if isinstance(value, str) and value else None


def public_url(url: str) -> str:
    """The URL without its password (in the userinfo or the query: ?password=): what a report may show."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return strip_credentials(url.split("@")[-1] if "@" in url else url)
    if parsed.password is None:
        return strip_credentials(url)
    return strip_credentials(parsed._replace(password=None).render_as_string(hide_password=False))


def url_secrets(url: str) -> list[str]:
    try:
        password = make_url(url).password
    except ArgumentError:
        return []
    return [str(password)] if password else []
