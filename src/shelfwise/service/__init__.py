"""The HTTP service: FastAPI app factory, routes, schemas, auth and metrics."""

from shelfwise.service.app import create_app

__all__ = ["create_app"]
