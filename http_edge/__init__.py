"""Tidings HTTP edge: the REST API (`/v1/...`) in front of the router.

Modules, one concept each:
- `settings.py`: typed settings, read once from `TIDINGS_*` and the command line.
- `tokens.py`: bearer tokens (HMAC-SHA256 over user id, email, expiry).
- `errors.py`: `ApiError` and the one exception → JSON error body mapping.
- `schemas.py`: pydantic request/response models and protobuf → JSON views.
- `compose.py`: building the MIME message of `POST /v1/messages` (stdlib `email`).
- `sending.py`: the send flow: validate and compose, check recipients, deliver.
- `deps.py`: shared dependencies: settings, router client, the authenticated user.
- `limits.py`: request body size limit (413 as a JSON error).
- `metrics.py`: Prometheus counters/latency by route and status.
- `routes/`: one APIRouter per resource (auth, folders, messages, threads, search, health).
- `push.py`: the seam for `/v1/events` (live push, a later issue).
- `app.py`: the factory and lifespan (opens and closes the router channel).
- `__main__.py`: `python -m http_edge --router ... --port ...` runs uvicorn.

Routes never catch exceptions: the router client raises typed errors
(`tidings_client.errors`), edge code raises `ApiError`, and `errors.py` turns
both into `{"error": {"code", "message"}}` with the fitting status.
"""
