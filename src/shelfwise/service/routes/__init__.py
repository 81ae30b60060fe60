"""One router per resource; `create_app` includes them all."""

from shelfwise.service.routes import catalog, events, ops, recommend, search, shoppers

ROUTERS = (ops.router, recommend.router, search.router, shoppers.router, catalog.router, events.router)

__all__ = ["ROUTERS"]
