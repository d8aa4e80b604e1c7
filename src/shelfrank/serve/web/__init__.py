"""The storefront: web pages over the API (homepage, operator view, evaluation report)."""

from shelfrank.serve.web.routes import mount_web

__all__ = ["mount_web"]
