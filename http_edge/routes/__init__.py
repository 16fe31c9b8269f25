"""One APIRouter per resource; `app.py` includes them all (see `ROUTERS`)."""
from __future__ import annotations

from . import auth, changes, drafts, folders, health, messages, search, threads

ROUTERS = [health.router, auth.router, folders.router, messages.router, threads.router, search.router,
           changes.router, drafts.router]
