"""The HTTP API's reports (scope `reports:read`): the list of a site's stored monthly and yearly reports,
and each report as PDF or HTML (`pvp api`, mixed into `http_api.Api`)."""

from __future__ import annotations

import re

from pv_platform.http_api.common import PREFIX, ApiError, Response
from pv_platform.reports.publish import report_filename
from pv_platform.storage.reports import ReportStore

GRAIN_PERIOD = {"monthly": re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"), "yearly": re.compile(r"^\d{4}$")}
MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


class ReportViews:
    """Views of `Api` for reports; they use its `_site`, `_one`, `engine` and `ApiError`."""

    def get_reports(self, token, path: str, query: dict, site_id: str):
        """The site's reports, newest period first, with links to their PDF and HTML."""
        self._site(token, site_id)
        grain = self._one(query, "grain")
        if grain is not None and grain not in GRAIN_PERIOD:
            raise ApiError(400, f"grain: {grain!r} is not one of {', '.join(GRAIN_PERIOD)}")
        rows = ReportStore(self.engine).list([site_id], grain)
        data = []
        for r in rows.to_dict("records"):
            base = f"{PREFIX}/sites/{site_id}/reports/{r['grain']}/{r['period']}"
            data.append({**r, "pdf": f"{base}.pdf", "html": f"{base}.html"})
        return {"data": data}, False

    def get_report(self, token, path: str, query: dict, site_id: str, grain: str, name: str):
        """One report as a download (a `Response` of the PDF or HTML, ETag from its bytes)."""
        self._site(token, site_id)
        if grain not in GRAIN_PERIOD:
            raise ApiError(400, f"grain: {grain!r} is not one of {', '.join(GRAIN_PERIOD)}")
        period, _, fmt = name.rpartition(".")
        if fmt not in MEDIA_TYPES:
            raise ApiError(400, f"format: {name!r} must end in .pdf or .html")
        if not GRAIN_PERIOD[grain].match(period):
            example = "2026-11" if grain == "monthly" else "2026"
            raise ApiError(400, f"period: {period!r} is not a {grain} period such as {example}")
        document = ReportStore(self.engine).document(site_id, grain, period, fmt)
        if document is None:
            raise ApiError(404, f"no {grain} report of {site_id!r} for {period} (yet)")
        filename = report_filename(site_id, grain, period, fmt)
        headers = {
            "Content-Type": MEDIA_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        }
        return Response(200, document, headers), False


def report_paths(op, site: dict, not_modified: dict, errors: dict) -> dict:
    """The OpenAPI paths of the reports (`op` makes a GET operation, `site` is the path parameter)."""

    def param(name: str, where: str, description: str, required: bool = False, **schema) -> dict:
        return {"name": name, "in": where, "required": required, "description": description,
                "schema": schema or {"type": "string"}}  # fmt: skip

    return {
        "/sites/{site}/reports": op("the site's stored monthly and yearly reports, newest first, with"
                                    " links to their PDF and HTML", "reports:read", [
            site, param("grain", "query", "monthly or yearly (default both)", enum=["monthly", "yearly"])]),
        "/sites/{site}/reports/{grain}/{file}": {"get": {
            "summary": "one report as a download", "security": [{"bearer": ["reports:read"]}],
            "parameters": [site, param("grain", "path", "monthly or yearly", required=True,
                                        enum=["monthly", "yearly"]),
                           param("file", "path", "<period>.pdf or <period>.html: 2026-11.pdf (monthly),"
                                  " 2026.html (yearly)", required=True)],
            "responses": {"200": {"description": "the report", "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "text/html": {"schema": {"type": "string"}}}}, **not_modified, **errors}}},
    }  # fmt: skip
