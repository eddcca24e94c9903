"""Upload: *Add module from your filesystem*: a zip sent on to the registry.

The operator is checked before a byte of the upload is read: the form is parsed by the handler,
after the console dependency, not by FastAPI before its dependencies (which an ``UploadFile``
parameter would do), and the route's body cap (``max_upload_bytes`` and the multipart wrapping)
refuses a larger upload from its Content-Length, or once that many bytes have streamed in."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from modyard.backoffice.console import ConsoleDep
from modyard.backoffice.context import SLOT
from modyard.backoffice.rendering import is_htmx, problem_words, render
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.body_limit import RequestBodyTooLarge, body_limit
from modyard.sdk.client import ModyardAPIError

router = APIRouter(tags=["upload"])

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
ARCHIVE_FIELD = "archive"
#: Room for the multipart boundaries, part headers and the CSRF field around the archive.
MULTIPART_OVERHEAD = 64 * 1024


@router.get("/upload")
async def upload_form(request: Request, console: ConsoleDep) -> Response:
    return render(request, "upload.html", {"console": console})


def _refused(
    request: Request, console: ConsoleDep, status: int, title: str, detail: str
) -> Response:
    problem = {"status": status, "title": title, "detail": detail, "errors": [], "extra": []}
    template = "upload_result.html" if is_htmx(request) else "upload.html"
    return render(request, template, {"console": console, "problem": problem}, status_code=status)


def _upload_limit(settings: BackofficeSettings) -> int:
    return settings.max_upload_bytes + MULTIPART_OVERHEAD


@router.post("/upload")
@body_limit(_upload_limit)
async def upload(request: Request, console: ConsoleDep) -> Response:
    settings = SLOT.get(request).settings
    try:
        form = await request.form(max_files=1, max_fields=10)
    except RequestBodyTooLarge:
        return _too_large(request, console, "The upload", settings)
    try:
        return await _publish(request, console, settings, form.get(ARCHIVE_FIELD))
    finally:
        await form.close()


def _too_large(
    request: Request, console: ConsoleDep, what: str, settings: BackofficeSettings
) -> Response:
    return _refused(
        request,
        console,
        413,
        "File too large",
        f"{what} is larger than {settings.max_upload_bytes} bytes.",
    )


async def _publish(
    request: Request,
    console: ConsoleDep,
    settings: BackofficeSettings,
    archive: UploadFile | str | None,
) -> Response:
    if not isinstance(archive, UploadFile) or not archive.filename:
        return _refused(request, console, 422, "No file", "Choose a zip file to upload.")
    if not archive.filename.lower().endswith(".zip"):
        return _refused(
            request,
            console,
            415,
            "Only zip files",
            f"{archive.filename} is not a .zip file; pack the module first (`modyard pack`).",
        )
    data = await archive.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        return _too_large(request, console, archive.filename, settings)
    if not data.startswith(ZIP_MAGIC):
        return _refused(
            request,
            console,
            415,
            "Not a zip file",
            f"{archive.filename} does not hold a zip archive.",
        )
    try:
        published = await console.client.registry.publish_archive(data)
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        problem = problem_words(exc)
        problem["file"] = archive.filename
        template = "upload_result.html" if is_htmx(request) else "upload.html"
        return render(
            request,
            template,
            {"console": console, "problem": problem},
            status_code=exc.status,
        )
    name = published.name
    notice = f"Uploaded {archive.filename}: {name} {published.version}" + (
        "" if published.created else " (this exact archive was already there)"
    )
    target = f"/modules/{quote(name)}?notice={quote(notice)}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
