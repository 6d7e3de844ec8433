"""The admin's import of offline conversions from a CSV file (`/ui/conversions/import`): the upload form with
its dry run, and the report row by row, from the same service as `POST /api/v1/conversions/import`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.conversion_import import COLUMNS, MAX_FILE_BYTES, MAX_ROWS
from tracklane.domain.errors import InvalidParameter
from tracklane.web.ui.routing import PageRoute, page
from tracklane.web.ui.session import AdminViewer, Viewer, services_of, viewer_form

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def _form_page(request: Request, viewer: Viewer, status: int = 200, error: str | None = None) -> Response:
    return page(request, viewer, "admin_import.html", status, report=None, error=error, columns=COLUMNS,
                max_rows=MAX_ROWS, max_megabytes=MAX_FILE_BYTES // 2**20, file_name=None)  # fmt: skip


@router.get("/conversions/import")
async def import_form(request: Request, viewer: AdminViewer) -> Response:
    return _form_page(request, viewer)


@router.post("/conversions/import")
async def import_file(request: Request, viewer: AdminViewer) -> Response:
    form = await viewer_form(request, viewer)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _form_page(request, viewer, 400, "file: choose the CSV file to import")
        data, name = await upload.read(MAX_FILE_BYTES + 1), upload.filename
        dry_run = form.get("dry_run") in ("on", "true", "1")
    finally:
        await form.close()  # the upload's spooled file
    try:
        report = await services_of(request).conversions.import_file(viewer.scope, data, dry_run=dry_run)
    except InvalidParameter as refused:
        return _form_page(request, viewer, 400, str(refused))
    return page(request, viewer, "admin_import.html", report=report, error=None, columns=COLUMNS,
                max_rows=MAX_ROWS, max_megabytes=MAX_FILE_BYTES // 2**20, file_name=name)  # fmt: skip
