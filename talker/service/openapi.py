"""The service's OpenAPI document (/openapi.json, shown at /docs): FastAPI's, completed with how to
authenticate, the job and error models, the error answers of each route and the headers they send.
"""

from __future__ import annotations

from talker.service.jobs import STATES

ERROR = {"type": "object", "required": ["error"], "description": "Every answer that is not a success",
         "properties": {"error": {"type": "string", "description": "what is wrong and what to do"}}}

JOB = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string", "nullable": True},
        "state": {"type": "string", "enum": list(STATES)}, "stage": {"type": "string", "nullable": True},
        "frames_done": {"type": "integer"}, "frames_total": {"type": "integer"},
        "fps": {"type": "number", "description": "frames rendered per second"},
        "eta_s": {"type": "number", "nullable": True, "description": "seconds left"},
        "error": {"type": "string", "nullable": True}, "batch": {"type": "string", "nullable": True},
        "attempts": {"type": "integer"}, "created_at": {"type": "number", "description": "Unix seconds"},
        "started_at": {"type": "number", "nullable": True}, "finished_at": {"type": "number", "nullable": True},
        "cold_start_s": {"type": "number", "nullable": True}, "options": {"type": "object"},
        "links": {"type": "object", "properties": {k: {"type": "string", "nullable": True}
                                                   for k in ("self", "video", "report", "live")}},
    },
}

# the error answers a route may give, by path prefix and method (beyond FastAPI's 422)
_ERRORS = {
    "401": "missing or wrong API key", "403": "an operator option the tenant may not set",
    "404": "no such job or batch for this tenant", "409": "the job has already ended",
    "413": "over an upload, pixel, length or body limit", "415": "not a picture / not audio",
    "422": "an invalid option, input or manifest", "429": "over the tenant's rate or job quota (see Retry-After)",
    "503": "the job store, the queue or the disk is unavailable (see Retry-After)",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before trying again"}}


def document(app) -> dict:
    """FastAPI's document of ``app`` with the security schemes, the Job and Error models and the
    error answers (with their headers) on every route."""
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update({"Error": ERROR, "Job": JOB})
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <the tenant's API key>"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    job_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            responses = op.setdefault("responses", {})
            if path.startswith("/v1/") and not path.startswith("/v1/discord"):
                op["security"] = [{"bearer": []}, {"apiKey": []}]
                for status, text in _ERRORS.items():
                    responses[status] = {"description": text, "content": error_ref}
                    if status in ("429", "503"):
                        responses[status]["headers"] = _RETRY_AFTER
            else:
                responses["503"] = {"description": _ERRORS["503"], "content": error_ref, "headers": _RETRY_AFTER}
            if path == "/v1/jobs/{job_id}":
                responses.setdefault("200", {"description": "the job"})["content"] = job_ref
            if path == "/v1/jobs" and method == "post":
                responses["202"] = {"description": "accepted: the new job", "content": job_ref,
                                    "headers": {"Location": {"schema": {"type": "string"}, "description": "the job's address"}}}
                responses["200"] = {"description": "the job made earlier with the same Idempotency-Key", "content": job_ref}
    return doc
