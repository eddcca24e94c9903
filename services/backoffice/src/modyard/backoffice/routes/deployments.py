"""Deployments (OneEntry's custom modules): the table with statuses that refresh themselves, the
add form, Deploy / Suspend / Resume / Delete / Update, the Warn reason and live logs."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.console import ConsoleDep
from modyard.backoffice.rendering import is_htmx, problem_words, render
from modyard.contracts.api.deployer import DeploymentOut
from modyard.sdk.client import ModyardAPIError

router = APIRouter(prefix="/deployments", tags=["deployments"])

Ref = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Action = Literal["deploy", "suspend", "resume", "delete"]
LOG_TAIL = 200


def parse_env(text: str) -> tuple[dict[str, str], list[str]]:
    """``NAME=value`` lines (blank lines and ``#`` comments skipped) and the lines that are not."""
    env: dict[str, str] = {}
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            bad.append(f"line {number}: write NAME=value")
            continue
        env[name.strip()] = value
    return env, bad


async def _page(console: ConsoleDep) -> list[DeploymentOut]:
    return [item async for item in console.client.deployer.all_deployments()]


def _form_problem(detail: str, errors: list[str]) -> dict[str, Any]:
    return {
        "status": 422,
        "title": "The deployment is not valid",
        "detail": detail,
        "errors": [{"pointer": "/body/env", "detail": text} for text in errors],
        "extra": [],
    }


@router.get("")
async def table(request: Request, console: ConsoleDep) -> Response:
    deployments = await _page(console)
    template = "deployments/rows.html" if is_htmx(request) else "deployments/list.html"
    return render(request, template, {"console": console, "deployments": deployments, "values": {}})


@router.post("")
async def create(request: Request, console: ConsoleDep) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    env, bad = parse_env(form.get("env", ""))
    problem = None
    if bad:
        problem = _form_problem("Each env line is NAME=value.", bad)
    else:
        port_text = form.get("port", "").strip()
        try:
            await console.client.deployer.create(
                name=form.get("name", "").strip(),
                image=form.get("image", "").strip(),
                tag=form.get("tag", "").strip() or None,
                registry_host=form.get("registry_host", "").strip(),
                token_id=form.get("token_id", "").strip(),
                token=form.get("token", ""),
                env=env,
                port=int(port_text) if port_text.isdigit() else None,
            )
        except ModyardAPIError as exc:
            if exc.status >= 500 or exc.status == 401:
                raise
            problem = problem_words(exc)
    if problem is None:
        name = form.get("name", "").strip()
        return RedirectResponse(
            f"/deployments?notice={quote(f'Created {name}; press Deploy to start it.')}",
            status_code=303,
        )
    form.pop("token", None)  # never echoed back into the page
    return render(
        request,
        "deployments/list.html",
        {
            "console": console,
            "deployments": await _page(console),
            "values": form,
            "problem": problem,
        },
        status_code=int(problem["status"]),
    )


@router.get("/{ref}")
async def detail(request: Request, ref: Ref, console: ConsoleDep) -> Response:
    deployment = await console.client.deployer.deployment(ref)
    template = "deployments/status.html" if is_htmx(request) else "deployments/detail.html"
    return render(request, template, {"console": console, "deployment": deployment})


@router.get("/{ref}/logs")
async def logs(
    request: Request,
    ref: Ref,
    console: ConsoleDep,
    tail: Annotated[int, Query(ge=1, le=5000)] = LOG_TAIL,
) -> Response:
    """The last lines of output; the page asks again every few seconds, which is what makes the
    log live without holding a connection per viewer open."""
    message: str | None
    try:
        text = "".join([chunk async for chunk in console.client.deployer.logs(ref, tail=tail)])
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        text = ""
        message = exc.detail
    else:
        message = None if text else "No output yet."
    return render(request, "deployments/logs.html", {"text": text, "message": message, "ref": ref})


@router.post("/{ref}/update")
async def update(request: Request, ref: Ref, console: ConsoleDep) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    env_text = form.get("env", "")
    env, bad = parse_env(env_text)
    if bad:
        deployment = await console.client.deployer.deployment(ref)
        return render(
            request,
            "deployments/detail.html",
            {
                "console": console,
                "deployment": deployment,
                "problem": _form_problem("Each env line is NAME=value.", bad),
            },
            status_code=422,
        )
    await console.client.deployer.update(
        ref,
        tag=form.get("tag", "").strip() or None,
        # An empty box keeps the current variables; to change them, give them all.
        env=env if env_text.strip() else None,
        token_id=form.get("token_id", "").strip() or None,
        token=form.get("token") or None,
    )
    notice = quote("Updated; the container restarts with the new settings.")
    return RedirectResponse(f"/deployments/{quote(ref)}?notice={notice}", status_code=303)


@router.post("/{ref}/{action}")
async def act(request: Request, ref: Ref, action: Action, console: ConsoleDep) -> Response:
    deployer = console.client.deployer
    calls = {
        "deploy": deployer.deploy,
        "suspend": deployer.suspend,
        "resume": deployer.resume,
        "delete": deployer.delete,
    }
    await calls[action](ref)
    done = {
        "deploy": "Deploying",
        "suspend": "Suspending",
        "resume": "Resuming",
        "delete": "Deleting",
    }
    form = await request.form()
    stay = form.get("back") == "detail" and action != "delete"
    target = f"/deployments/{quote(ref)}" if stay else "/deployments"
    return RedirectResponse(f"{target}?notice={quote(f'{done[action]} {ref}.')}", status_code=303)
