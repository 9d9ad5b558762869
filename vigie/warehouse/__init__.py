"""Health data warehouses reached through SQL: connection, catalogue, and the checks' SQL.

Every rule is compiled to one or a few aggregate SQL queries run in the warehouse; only counts and capped
samples come back to Python. Dialect differences live in `dialect.py` alone.
"""
from .url import check_url, public_url, url_secrets

__all__ = ["check_url", "public_url", "url_secrets"]
