"""The API's OpenAPI 3 document (served at ``/v1/openapi.json``; fuzzed by the tests).

The job object is the contract's report schema; errors are one shape everywhere.
"""

from __future__ import annotations

import functools
from typing import Any

from config.settings import SERVICES
from models.report import MODERATION
from models.stats import CHECK_STATES, JOB_STATES

VERDICT = {"type": "string", "enum": ["PASS", "REVIEW", "REJECT"], "nullable": True}
TEXT = {"type": "string", "nullable": True}
NUMBER = {"type": "number", "nullable": True}

ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
}
SOE = {
    "type": "object", "nullable": True,
    "required": ["status", "session_id", "suggested_score", "pron_accuracy", "pron_fluency", "pron_completion",
                 "chunks", "error"],
    "properties": {"status": {"type": "string"}, "session_id": TEXT, "suggested_score": NUMBER,
                   "pron_accuracy": NUMBER, "pron_fluency": NUMBER, "pron_completion": NUMBER,
                   "chunks": {"type": "integer"}, "error": TEXT},
}
MODERATION_RESULT = {
    "type": "object", "required": ["status", "vendor_task_id", "verdict", "labels", "text", "error"],
    "properties": {"status": {"type": "string"}, "vendor_task_id": TEXT, "verdict": VERDICT,
                   "labels": {"type": "array", "items": {"type": "string"}}, "text": TEXT, "error": TEXT},
}
JOB = {
    "type": "object", "required": ["id", "batch", "audio", "status", "error", "verdict", "soe", "moderation"],
    "properties": {
        "id": {"type": "string"}, "batch": {"type": "string"}, "audio": TEXT,
        "status": {"type": "string", "enum": list(JOB_STATES)}, "error": TEXT, "verdict": VERDICT,
        "soe": {"$ref": "#/components/schemas/Soe"},
        "moderation": {"type": "object", "additionalProperties": False,
                       "properties": {s: {"$ref": "#/components/schemas/ModerationResult"} for s in MODERATION}},
    },
}
COUNTS = {"type": "object", "required": list(JOB_STATES),
          "properties": {s: {"type": "integer", "minimum": 0} for s in JOB_STATES}}
BATCH = {
    "type": "object", "required": ["batch", "total", "finished", "jobs", "services"],
    "properties": {
        "batch": {"type": "string"}, "total": {"type": "integer", "minimum": 0}, "finished": {"type": "boolean"},
        "jobs": COUNTS,
        "services": {"type": "object", "additionalProperties": {
            "type": "object", "required": list(CHECK_STATES),
            "properties": {s: {"type": "integer", "minimum": 0} for s in CHECK_STATES}}},
    },
}
TEXT_OR_LIST = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
TEXT_OR_NUMBER = {"oneOf": [{"type": "string"}, {"type": "number"}]}
ROW = {
    "type": "object", "description": "A manifest row, as in `voxqueue ingest` (an upload: audio is its file name).",
    "properties": {
        "id": TEXT_OR_NUMBER, "audio": {"type": "string"}, "stream": {"type": "string"},
        "services": TEXT_OR_LIST, "ref_text": {"type": "string"}, "lang": {"type": "string"},
        "eval_mode": {"type": "string"}, "score_coeff": TEXT_OR_NUMBER, "soe_mode": {"type": "string"},
        "keywords": TEXT_OR_LIST, "user_id": TEXT_OR_NUMBER, "room_id": TEXT_OR_NUMBER,
    },
}
SUBMISSION = {
    "type": "object", "required": ["batch", "jobs", "rejected", "queued", "deferred"],
    "properties": {
        "batch": {"type": "string"},
        "jobs": {"type": "array", "items": {
            "type": "object", "required": ["id", "url", "status", "created", "error"],
            "properties": {"id": {"type": "string"}, "url": {"type": "string"},
                           "status": {"type": "string", "enum": list(JOB_STATES)},
                           "created": {"type": "boolean"}, "error": TEXT}}},
        "rejected": {"type": "array", "items": {
            "type": "object", "required": ["row", "id", "reason"],
            "properties": {"row": {"type": "integer"}, "id": TEXT, "reason": {"type": "string"}}}},
        "queued": {"type": "integer", "minimum": 0},
        "deferred": {"type": "integer", "minimum": 0,
                     "description": "checks recorded but not yet taken by the broker: housekeeping sends them"},
        "notify": {"type": "object", "required": ["url"],
                   "properties": {"url": {"type": "string"},
                                  "secret": {"type": "string", "description": "shown once, when the URL is new"}}},
    },
}
RETRIED = {"type": "object", "required": ["batch", "retried", "deferred"],
           "properties": {"batch": {"type": "string"}, "retried": {"type": "integer", "minimum": 0},
                          "deferred": {"type": "integer", "minimum": 0}}}

BATCH_NAME = "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"  # a batch made through the API (workers.api)
BATCH_PARAM = {"name": "batch", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": BATCH_NAME}}
NOTIFY_URL = {"type": "string", "maxLength": 2000, "pattern": "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$"}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


def _responses(ok: str, ok_schema: str, description: str, *errors: int) -> dict[str, Any]:
    out = {ok: _json(ok_schema, description), "401": _json("Error", "no valid bearer token")}
    for status in errors:
        out[str(status)] = _json("Error", _ERRORS[status])
    out["default"] = _json("Error", "an error")
    return out


_ERRORS = {400: "the request cannot be read", 404: "no such batch (or job) of this token's",
           408: "the body was too slow", 409: "jobs recorded with other content, or a batch name another token has",
           413: "a body or an upload over its limit", 415: "a content type that is not taken",
           503: "the database did not answer"}


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "voxqueue", "version": "1",
                 "description": "Submit audio jobs, read their results; every operation needs a bearer token "
                                "(`voxqueue api token create NAME`)."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/batches/{batch}/jobs": {"post": {
                "operationId": "submitJobs", "summary": "Record and enqueue jobs (idempotent per batch and id)",
                "parameters": [BATCH_PARAM, {"name": "notify_url", "in": "query", "required": False,
                                             "schema": NOTIFY_URL}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Row"},
                                                              {"type": "array", "minItems": 1,
                                                               "items": {"$ref": "#/components/schemas/Row"}}]}},
                    "application/x-ndjson": {"schema": {"type": "string", "description": "a job per line"}},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["jobs"], "properties": {
                        "jobs": {"type": "string", "description": "JSON or JSON Lines rows"},
                        "notify_url": NOTIFY_URL,
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
                }},
                "responses": _responses("202", "Submission", "recorded (and enqueued)", 400, 408, 409, 413, 415, 503),
            }},
            "/v1/batches/{batch}": {"get": {
                "operationId": "getBatch", "summary": "Jobs by state, checks by service and state",
                "parameters": [BATCH_PARAM],
                "responses": _responses("200", "Batch", "the counts", 404, 503),
            }},
            "/v1/batches/{batch}/jobs/{id}": {"get": {
                "operationId": "getJob", "summary": "A job's report object (the contract's schema)",
                "parameters": [BATCH_PARAM, {"name": "id", "in": "path", "required": True,
                                             "schema": {"type": "string", "minLength": 1, "maxLength": 256}}],
                "responses": _responses("200", "Job", "the job", 404, 503),
            }},
            "/v1/batches/{batch}/report": {"get": {
                "operationId": "getReport", "summary": "The batch's report, streamed",
                "parameters": [BATCH_PARAM, {"name": "format", "in": "query", "required": False,
                                             "schema": {"type": "string", "enum": ["json", "csv"]}}],
                "responses": {
                    "200": {"description": "one object per job in ingestion order, or CSV flattened with '.'",
                            "content": {"application/json": {"schema": {"type": "array",
                                                                        "items": {"$ref": "#/components/schemas/Job"}}},
                                        "text/csv": {"schema": {"type": "string"}}}},
                    **{k: v for k, v in _responses("200", "Job", "", 400, 404, 503).items() if k != "200"},
                },
            }},
            "/v1/batches/{batch}/retry": {"post": {
                "operationId": "retryFailed", "summary": "Re-enqueue the batch's failed work",
                "parameters": [BATCH_PARAM, {"name": "service", "in": "query", "required": False,
                                             "schema": {"type": "string", "enum": list(SERVICES)}}],
                "responses": _responses("202", "Retried", "failed checks sent again", 400, 404, 503),
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Job": JOB, "Soe": SOE, "ModerationResult": MODERATION_RESULT,
                        "Batch": BATCH, "Row": ROW, "Submission": SUBMISSION, "Retried": RETRIED},
        },
    }
