"""The OpenAPI 3.1 document of the API."""

from __future__ import annotations

import logging

from pv_platform.export import (
    KPI_TABLE,
)
from pv_platform.http_api.common import PREFIX
from pv_platform.http_api.limits import (
    DEFAULT_LIMIT,
    MAX_BODY_BYTES,
    MAX_COMMENT_CHARS,
    MAX_LIMIT,
    MAX_RANGE,
    SCOPES,
)
from pv_platform.http_api.reports import report_paths

log = logging.getLogger("pv_platform.http_api")


def _param(name: str, where: str, description: str, required: bool = False, **schema) -> dict:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema or {"type": "string"}}  # fmt: skip


def openapi() -> dict:
    """The OpenAPI 3.1 document of this API."""
    errors = {
        str(code): {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in ((400, "a parameter is wrong (the message names it)"), (401, "no or unknown token"),
                           (403, "the token lacks the scope or the site"), (404, "no such site or resource"))
    }  # fmt: skip
    page = {"description": "a page of rows; next_cursor for the next (null: last page)",
            "content": {"application/json": {"schema": {"type": "object"}}}}  # fmt: skip
    not_modified = {"304": {"description": "not modified (If-None-Match matched the ETag)"}}
    site = _param("site", "path", "site id", required=True)
    window = [
        _param("start", "query", "ISO 8601 date or time; without an offset the site's local time", required=True),
        _param("end", "query", "exclusive, like start", required=True),
        _param("limit", "query", f"rows per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})",
               type="integer", minimum=1, maximum=MAX_LIMIT),
        _param("cursor", "query", "next_cursor of the previous page (same parameters)"),
    ]  # fmt: skip

    def op(summary: str, scope: str, params: list[dict]) -> dict:
        return {"get": {"summary": summary, "security": [{"bearer": [scope]}], "parameters": params,
                        "responses": {"200": page, **not_modified, **errors}}}  # fmt: skip

    return {
        "openapi": "3.1.0",
        "info": {"title": "PV Platform API", "version": "1.0.0",
                 "description": "Read-only access to sites, KPIs, samples, losses, alerts and incidents. Ranges: samples"
                 f" {MAX_RANGE['samples'].days} days ({MAX_RANGE['samples_bucketed'].days} with bucket),"
                 f" hourly KPIs {MAX_RANGE['hour'].days} days. Periods closed a day ago are cacheable."},
        "servers": [{"url": PREFIX}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "scopes: " + ", ".join(SCOPES)}},
            "schemas": {"Error": {"type": "object", "required": ["error", "status"],
                                  "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}},
        },
        "paths": _paths(op, site, window, not_modified, errors),
    }  # fmt: skip


def _paths(op, site: dict, window: list[dict], not_modified: dict, errors: dict) -> dict:
    """The paths of the document, each with its parameters and answers."""
    return {
        "/sites": op("sites the token may read", "sites:read", []),
        "/sites/{site}/devices": op("devices of a site, with metrics and units", "sites:read", [site]),
        "/sites/{site}/kpis": op("KPI rows of a site per period (units in `units`)", "kpis:read", [
            site, _param("grain", "query", "hour, day, month or year (default day)",
                         enum=list(KPI_TABLE)),
            _param("device", "query", "an inverter, or * for the site total (default: all)"),
            *window]),
        "/sites/{site}/samples": op("samples of a site, raw or downsampled", "samples:read", [
            site, _param("bucket", "query", "downsample: 1min, 15min, 1h ... (mean; last for counters)"),
            _param("device", "query", "one device"),
            _param("metric", "query", "a metric (repeatable)"), *window]),
        "/alerts": op("alerts, newest first", "alerts:read", [
            _param("site", "query", "one site"),
            _param("state", "query", "open, acknowledged or resolved", enum=["open", "acknowledged", "resolved"]),
            _param("severity", "query", "CRITICAL ... INFO", enum=["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]),
            *window[2:]]),
        "/incidents": op("incidents (alerts grouped by root cause) newest first, with devices, symptoms,"
                         " lost energy [kWh] and, with a tariff, lost revenue", "alerts:read", [
            _param("site", "query", "one site"),
            _param("state", "query", "open or resolved", enum=["open", "resolved"]), window[2]]),
        "/sites/{site}/losses": op("the loss waterfall per site-local period: reference energy, each cause"
                                   " [kWh] (they add up to reference - measured), measured energy", "kpis:read", [
            site, _param("grain", "query", "day, month or year (default day)", enum=["day", "month", "year"]),
            _param("device", "query", "an inverter, or * for the site (default: all)"), *window[:2]]),
        **report_paths(op, site, not_modified, errors),
        "/alerts/{id}/ack": {"post": {
            "summary": "acknowledge an open alert, signed api:<token name>",
            "security": [{"bearer": ["alerts:ack"]}],
            "parameters": [_param("id", "path", "alert id", required=True, type="integer")],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"comment": {"type": "string", "maxLength": MAX_COMMENT_CHARS}},
                "additionalProperties": False}}}},
            "responses": {"200": {"description": "the acknowledged alert"},
                          "409": {"description": "the alert is not open"},
                          "413": {"description": f"body over {MAX_BODY_BYTES} bytes"},
                          "415": {"description": "body not application/json"}, **errors}}},
    }  # fmt: skip
