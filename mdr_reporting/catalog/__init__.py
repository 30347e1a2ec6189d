"""Catalog: accounts, hashed API keys and report requests (the job queue)."""

from mdr_reporting.catalog.store import Account, ApiKey, Catalog, KeyScope, NewKey

__all__ = ["Account", "ApiKey", "Catalog", "KeyScope", "NewKey"]
