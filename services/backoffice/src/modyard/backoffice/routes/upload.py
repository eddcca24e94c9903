"""Upload: *Add module from your filesystem*: a zip sent on to the registry."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.console import ConsoleDep
from modyard.backoffice.rendering import is_htmx, problem_words, render
from modyard.backoffice.settings import BackofficeSettings
from modyard.sdk.client import ModyardAPIError

router = APIRouter(tags=["upload"])

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@router.get("/upload")
async def upload_form(request: Request, console: ConsoleDep) -> Response:
    return render(request, "upload.html", {"console": console})


def _refused(
    request: Request, console: ConsoleDep, status: int, title: str, detail: str
) -> Response:
    problem = {"status": status, "title": title, "detail": detail, "errors": [], "extra": []}
    template = "upload_result.html" if is_htmx(request) else "upload.html"
    return render(request, template, {"console": console, "problem": problem}, status_code=status)


@router.post("/upload")
async def upload(
    request: Request,
    console: ConsoleDep,
    archive: Annotated[UploadFile | None, File(description="the module's zip")] = None,
) -> Response:
    settings: BackofficeSettings = request.app.state.settings
    if archive is None or not archive.filename:
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
        return _refused(
            request,
            console,
            413,
            "File too large",
            f"{archive.filename} is larger than {settings.max_upload_bytes} bytes.",
        )
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
    name = published["name"]
    notice = f"Uploaded {archive.filename}: {name} {published['version']}" + (
        "" if published.get("created", True) else " (this exact archive was already there)"
    )
    target = f"/modules/{quote(name)}?notice={quote(notice)}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
