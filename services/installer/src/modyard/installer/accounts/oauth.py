"""OAuth 2 accounts: the authorization code flow with PKCE, and keeping tokens fresh.

- Operators register each auth service's OAuth client (``PUT /v1/auth-services/{service}``):
  client id and secret (encrypted), optionally endpoints and scopes that override auth.js's.
- ``POST …/accounts/connect`` starts a connection for the caller: a PKCE verifier kept here
  (encrypted, never sent to the browser), and a ``state`` signed with the platform's JWT secret
  naming the connection, the user and the workspace. The user's browser goes to the provider.
- ``POST …/accounts/callback {code, state}`` (the backoffice's callback page calls it with the
  signed-in user's token) finishes it: the state must be valid, unused and the caller's own; the
  code and verifier are exchanged for tokens and the account is named from the profile.
- Every vendor call (token exchange, refresh, profile) runs through the JavaScript runner's
  auth calls, so auth.js functions work and the egress policy applies to all of them.
- Tokens are refreshed when they expire within ``MODYARD_INSTALLER_OAUTH_REFRESH_MARGIN_SECONDS``
  and when a component got a 401 with them. The account's row is locked (``SELECT … FOR
  UPDATE``) around a refresh and read again once the lock is held, so concurrent callers with
  an expired token cause one refresh; the others get its tokens. A refresh the provider
  refuses marks the account invalid and records ``modyard.installer.account.invalidated``
  (the runtime sends the ``account.invalid`` system webhook).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import structlog
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.auth import Principal
from modyard.common.bus.envelope import new_event
from modyard.common.bus.outbox import record_event
from modyard.common.errors import Conflict, Forbidden, InvalidParam, NotFound, ValidationFailed
from modyard.contracts.events.installer import ACCOUNT_INVALIDATED, AccountInvalidated
from modyard.installer.accounts import providers
from modyard.installer.accounts.models import Account, AuthServiceClient, OAuthConnect
from modyard.installer.context import InstallerContext
from modyard.installer.models import Workspace

log = structlog.get_logger(__name__)

STATE_AUDIENCE = "modyard-oauth-state"


class AuthServiceIn(BaseModel):
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: str = Field(min_length=1, max_length=4096, json_schema_extra={"writeOnly": True})
    #: Overrides of auth.js's endpoints and scopes (a connector that computes them, or a
    #: provider of your own).
    auth_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    token_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    scope: list[str] | None = Field(default=None, max_length=100)


class AuthServiceClientOut(BaseModel):
    service: str
    client_id: str
    #: The secret is stored (encrypted); it is never shown.
    has_secret: bool
    auth_url: str | None
    token_url: str | None
    scope: list[str] | None
    updated_by: str
    updated_at: datetime


class ConnectIn(BaseModel):
    service: str = Field(min_length=1, max_length=255)
    #: Where the backoffice sends the browser once the account is stored.
    return_to: str | None = Field(default=None, max_length=2048)
    #: Where the provider sends the browser back; the installer's setting by default.
    redirect_uri: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")


class ConnectOut(BaseModel):
    authorize_url: str
    state: str
    redirect_uri: str


class CallbackIn(BaseModel):
    #: OAuth 2: the authorization code.
    code: str | None = Field(default=None, min_length=1, max_length=4096)
    state: str = Field(min_length=1, max_length=4096)
    #: OAuth 1.0a: the request token and the verifier the provider sent back.
    oauth_token: str | None = Field(default=None, max_length=4096)
    oauth_verifier: str | None = Field(default=None, max_length=4096)


def describe_client(row: AuthServiceClient) -> AuthServiceClientOut:
    options = row.options or {}
    return AuthServiceClientOut(
        service=row.service,
        client_id=row.client_id,
        has_secret=bool(row.client_secret),
        auth_url=options.get("auth_url"),
        token_url=options.get("token_url"),
        scope=options.get("scope"),
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def set_client(
    session: AsyncSession, context: InstallerContext, service: str, body: AuthServiceIn, actor: str
) -> AuthServiceClient:
    row = await session.get(AuthServiceClient, service)
    options = {"auth_url": body.auth_url, "token_url": body.token_url, "scope": body.scope}
    secret = context.secrets.encrypt_json(body.client_secret)
    if row is None:
        row = AuthServiceClient(
            service=service,
            client_id=body.client_id,
            client_secret=secret,
            options=options,
            updated_by=actor,
        )
        session.add(row)
    else:
        row.client_id, row.client_secret, row.options, row.updated_by = (
            body.client_id,
            secret,
            options,
            actor,
        )
    await session.flush()
    await session.refresh(row)
    return row


async def get_client(session: AsyncSession, service: str) -> AuthServiceClient:
    row = await session.get(AuthServiceClient, service)
    if row is None:
        raise NotFound(
            f"No OAuth client is set for {service!r}; an operator sets one with "
            f"PUT /v1/auth-services/{service} {{client_id, client_secret}}."
        )
    return row


async def list_clients(session: AsyncSession) -> list[AuthServiceClient]:
    return list(
        (await session.scalars(select(AuthServiceClient).order_by(AuthServiceClient.service))).all()
    )


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _scope(value: Any) -> str | None:
    if isinstance(value, list):
        return " ".join(str(item) for item in value) or None
    return str(value) if value else None


async def start_connect(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    principal: Principal,
    body: ConnectIn,
) -> ConnectOut:
    provider = await providers.find_provider(session, workspace, body.service)
    described = await providers.form(context, workspace, provider)
    if described.get("type") not in ("oauth2", "oauth"):
        raise ValidationFailed(
            f"{body.service} is an {described.get('type') or 'unknown'} auth service: create its "
            f"accounts with POST /v1/workspaces/{workspace.slug}/accounts and its form's fields.",
            slug="not-oauth",
        )
    client = await session.get(AuthServiceClient, body.service)
    if client is None:
        raise Conflict(
            f"{body.service} has no OAuth client yet; an operator sets one with "
            f"PUT /v1/auth-services/{body.service}.",
            slug="auth-service-not-configured",
        )
    settings = context.settings
    redirect_uri = (
        body.redirect_uri
        or settings.oauth_callback_url
        or (f"{settings.backoffice_url.rstrip('/')}/oauth/callback")
    )
    verifier, challenge = _pkce()
    connect = OAuthConnect(
        id=uuid.uuid4(),
        workspace_id=workspace.id,
        owner=principal.subject,
        service=body.service,
        code_verifier=context.secrets.encrypt_json(verifier),
        redirect_uri=redirect_uri,
        return_to=body.return_to,
    )
    session.add(connect)
    await session.flush()
    state = jwt.encode(
        {
            "cid": str(connect.id),
            "sub": principal.subject,
            "ws": workspace.slug,
            "aud": STATE_AUDIENCE,
            "exp": datetime.now(UTC) + timedelta(minutes=settings.oauth_connect_minutes),
        },
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    if described.get("type") == "oauth":
        return await _start_oauth1(
            session, context, workspace, provider, client, connect, state, redirect_uri
        )
    options = client.options or {}
    base = options.get("auth_url") or described.get("authUrl")
    if not base and "authUrl" in (described.get("functions") or []):
        answer = await providers.ask(
            context,
            workspace,
            provider,
            "authorize",
            {
                "clientId": client.client_id,
                "callbackUrl": redirect_uri,
                "ticket": state,
                "scope": options.get("scope") or described.get("scope"),
            },
        )
        base = (answer.get("result") or {}).get("url") if answer.get("ok") else None
    if not base:
        raise Conflict(
            f"{body.service}'s auth.js gives no authUrl; an operator sets auth_url with "
            f"PUT /v1/auth-services/{body.service}.",
            slug="auth-service-not-configured",
        )
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    scope = _scope(options.get("scope") or described.get("scope"))
    if scope:
        query["scope"] = scope
    separator = "&" if "?" in str(base) else "?"
    return ConnectOut(
        authorize_url=f"{base}{separator}{urlencode(query)}", state=state, redirect_uri=redirect_uri
    )


def _claims(context: InstallerContext, state: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            state,
            context.settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            audience=STATE_AUDIENCE,
        )
    except jwt.PyJWTError as exc:
        raise ValidationFailed(
            f"The state is not one this installer signed, or it expired ({exc}); connect again.",
            slug="invalid-oauth-state",
            errors=[InvalidParam(pointer="/body/state", detail=str(exc))],
        ) from exc
    return claims


def _secrets_of(tokens: dict[str, Any]) -> dict[str, Any]:
    """What the account keeps of a token answer: the tokens, and the profile auth.js's
    ``requestProfileInfo`` gave at sign-in (components read ``context.auth.profileInfo``:
    GitHub's ``profileInfo.login``, Harvest's ``profileInfo.accountId``…). A refresh answer
    has no profile: the one from sign-in stays."""
    kept = {
        key: tokens.get(key)
        for key in ("accessToken", "refreshToken", "tokenType", "scope")
        if tokens.get(key) is not None
    }
    if isinstance(tokens.get("profileInfo"), dict):
        kept["profileInfo"] = tokens["profileInfo"]
    return kept


def _expiry(tokens: dict[str, Any]) -> datetime | None:
    value = tokens.get("expiresAt")
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


async def client_values(
    context: InstallerContext, service: str, session: AsyncSession
) -> tuple[AuthServiceClient, dict[str, Any]]:
    client = await get_client(session, service)
    options = client.options or {}
    values = {
        "clientId": client.client_id,
        "clientSecret": context.secrets.decrypt_json(client.client_secret),
    }
    if options.get("token_url"):
        values["tokenUrl"] = options["token_url"]
    return client, values


def _exchanged(connect: OAuthConnect, answer: dict[str, Any]) -> dict[str, Any]:
    """The provider's tokens from the runner's answer to a code or verifier exchange."""
    if not answer.get("ok"):
        raise ValidationFailed(
            f"{connect.service} refused the sign-in: {answer.get('message')}",
            slug="oauth-exchange-failed",
            vendor_message=answer.get("message"),
        )
    return dict(answer.get("result") or {})


async def _store_connected(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    principal: Principal,
    connect: OAuthConnect,
    *,
    type_: str,
    name: Any,
    secrets: dict[str, Any],
    expires_at: datetime | None,
) -> Account:
    """The account a finished sign-in (OAuth 2 or 1.0a) creates, owned by whoever signed in."""
    account = Account(
        workspace_id=workspace.id,
        owner=principal.subject,
        service=connect.service,
        type=type_,
        name=str(name or f"{connect.service} account")[:255],
        secrets=context.secrets.encrypt_json(secrets),
        status="valid",
        expires_at=expires_at,
        refreshes=0,
    )
    session.add(account)
    await session.flush()
    await session.refresh(account)
    log.info("account_connected", workspace=workspace.slug, service=connect.service)
    return account


async def finish_connect(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    principal: Principal,
    body: CallbackIn,
) -> tuple[Account, str | None]:
    """The new account, and where the browser goes next."""
    claims = _claims(context, body.state)
    if claims.get("sub") != principal.subject:
        raise Forbidden(
            "This sign-in was started by someone else; connect the account yourself.",
            slug="oauth-state-not-yours",
        )
    if claims.get("ws") != workspace.slug:
        raise ValidationFailed(
            f"This sign-in was started in workspace {claims.get('ws')!r}, not {workspace.slug!r}.",
            slug="invalid-oauth-state",
        )
    connect = await session.scalar(
        select(OAuthConnect)
        .where(
            OAuthConnect.id == uuid.UUID(str(claims.get("cid"))),
            OAuthConnect.workspace_id == workspace.id,
        )
        .with_for_update()
    )
    if connect is None:
        raise ValidationFailed(
            "This sign-in was finished already (a state is used once); connect again.",
            slug="invalid-oauth-state",
        )
    await session.delete(connect)
    provider = await providers.find_provider(session, workspace, connect.service)
    if body.oauth_verifier is not None:
        return await _finish_oauth1(session, context, workspace, principal, provider, connect, body)
    if not body.code:
        raise ValidationFailed(
            "Send the provider's code (OAuth 2) or oauth_token and oauth_verifier (OAuth 1.0a).",
            slug="invalid-oauth-callback",
            errors=[InvalidParam(pointer="/body/code", detail="required for OAuth 2")],
        )
    _client, values = await client_values(context, connect.service, session)
    answer = await providers.ask(
        context,
        workspace,
        provider,
        "token",
        {
            **values,
            "grant": "authorization_code",
            "authorizationCode": body.code,
            "codeVerifier": context.secrets.decrypt_json(connect.code_verifier),
            "callbackUrl": connect.redirect_uri,
        },
        # A definition written as a function (a vendor SDK's client) is built from these.
        init_data={**values, "callbackUrl": connect.redirect_uri},
    )
    tokens = _exchanged(connect, answer)
    account = await _store_connected(
        session,
        context,
        workspace,
        principal,
        connect,
        type_="oauth2",
        name=tokens.get("name"),
        secrets=_secrets_of(tokens),
        expires_at=_expiry(tokens),
    )
    return account, connect.return_to


@dataclass(frozen=True)
class Fresh:
    """An account's tokens after :func:`fresh_tokens`; ``invalid`` when the provider refused to
    refresh them (the account is marked invalid in the same transaction)."""

    auth: dict[str, Any]
    invalid: str | None = None


async def _locked(session: AsyncSession, account: Account) -> Account:
    locked = await session.scalar(
        select(Account)
        .where(Account.id == account.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    return locked


async def _refresh(
    session: AsyncSession, context: InstallerContext, workspace: Workspace, account: Account
) -> Fresh:
    """Refresh under the row lock the caller holds; marks the account invalid when refused."""
    current: dict[str, Any] = context.secrets.decrypt_json(account.secrets)
    if not current.get("refreshToken"):
        reason = "the provider gave no refresh token and the access token expired"
    else:
        provider = await providers.find_provider(session, workspace, account.service)
        _client, values = await client_values(context, account.service, session)
        answer = await providers.ask(
            context,
            workspace,
            provider,
            "token",
            {**values, **current, "grant": "refresh_token"},
            init_data=values,
        )
        if answer.get("ok"):
            tokens = dict(answer.get("result") or {})
            fresh = {**current, **_secrets_of(tokens)}
            account.secrets = context.secrets.encrypt_json(fresh)
            account.expires_at = _expiry(tokens)
            account.refreshes += 1
            account.status, account.invalid_reason = "valid", None
            await session.flush()
            log.info("account_refreshed", workspace=workspace.slug, id=str(account.id))
            return Fresh(fresh)
        reason = f"the provider refused to refresh the tokens: {answer.get('message')}"
    await invalidate(session, context, workspace, account, reason)
    return Fresh({}, invalid=reason)


async def invalidate(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    account: Account,
    reason: str,
) -> None:
    """Mark the account invalid and tell the runtime (which sends ``account.invalid``)."""
    already = account.status == "invalid"
    account.status, account.invalid_reason = "invalid", reason[:2000]
    await session.flush()
    if already:
        return
    log.warning("account_invalid", workspace=workspace.slug, id=str(account.id))
    await record_event(
        session,
        new_event(
            type=ACCOUNT_INVALIDATED,
            source=context.settings.source,
            subject=f"{workspace.slug}/accounts/{account.id}",
            data=AccountInvalidated(
                workspace=workspace.slug,
                account_id=str(account.id),
                owner=account.owner,
                service=account.service,
                name=account.name,
                reason=reason[:2000],
            ).model_dump(mode="json"),
        ),
    )


def _expiring(context: InstallerContext, account: Account) -> bool:
    if account.expires_at is None:
        return False
    margin = timedelta(seconds=context.settings.oauth_refresh_margin_seconds)
    return account.expires_at - margin <= datetime.now(UTC)


async def fresh_tokens(
    session: AsyncSession, context: InstallerContext, workspace: Workspace, account: Account
) -> Fresh:
    """The tokens, refreshed first when they expire within the margin (one refresh however many
    callers: the row lock, then a second look)."""
    if account.status == "invalid":
        return Fresh({}, invalid=account.invalid_reason or "the account is invalid")
    if not _expiring(context, account):
        return Fresh(context.secrets.decrypt_json(account.secrets))
    account = await _locked(session, account)
    if account.status == "invalid":
        return Fresh({}, invalid=account.invalid_reason or "the account is invalid")
    if not _expiring(context, account):  # another caller refreshed while this one waited
        return Fresh(context.secrets.decrypt_json(account.secrets))
    return await _refresh(session, context, workspace, account)


async def refresh_after_401(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    account: Account,
    failed_token: str | None,
) -> Fresh:
    """A component got a 401 with ``failed_token``: refresh unless someone did already."""
    account = await _locked(session, account)
    if account.status == "invalid":
        return Fresh({}, invalid=account.invalid_reason or "the account is invalid")
    current: dict[str, Any] = context.secrets.decrypt_json(account.secrets)
    if failed_token and current.get("accessToken") != failed_token:
        return Fresh(current)
    return await _refresh(session, context, workspace, account)


def _with_state(url: str, state: str) -> str:
    """OAuth 1.0a has no state parameter: the callback URL carries ours."""
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'state': state})}"


def oauth1_init(
    context: InstallerContext, client: AuthServiceClient, callback: str
) -> dict[str, Any]:
    return {
        "consumerKey": client.client_id,
        "consumerSecret": context.secrets.decrypt_json(client.client_secret),
        "callbackUrl": callback,
    }


async def _start_oauth1(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    provider: providers.Provider,
    client: AuthServiceClient,
    connect: OAuthConnect,
    state: str,
    redirect_uri: str,
) -> ConnectOut:
    """A request token from the provider (auth.js's requestRequestToken), kept with the
    connection; the user's browser goes to authUrl with it."""
    callback = _with_state(redirect_uri, state)
    init = oauth1_init(context, client, callback)
    answer = await providers.ask(context, workspace, provider, "oauth1-start", init, init_data=init)
    if not answer.get("ok"):
        raise ValidationFailed(
            f"{connect.service} refused to start the sign-in: {answer.get('message')}",
            slug="oauth-exchange-failed",
            vendor_message=answer.get("message"),
        )
    found = dict(answer.get("result") or {})
    connect.code_verifier = context.secrets.encrypt_json(
        {
            "requestToken": found.get("requestToken"),
            "requestTokenSecret": found.get("requestTokenSecret"),
        }
    )
    connect.redirect_uri = callback
    await session.flush()
    return ConnectOut(authorize_url=str(found.get("url")), state=state, redirect_uri=callback)


async def _finish_oauth1(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    principal: Principal,
    provider: providers.Provider,
    connect: OAuthConnect,
    body: CallbackIn,
) -> tuple[Account, str | None]:
    kept = context.secrets.decrypt_json(connect.code_verifier)
    if not isinstance(kept, dict) or body.oauth_token != kept.get("requestToken"):
        raise ValidationFailed(
            "The oauth_token is not the request token of this sign-in; connect again.",
            slug="invalid-oauth-callback",
            errors=[InvalidParam(pointer="/body/oauth_token", detail="not this sign-in's")],
        )
    client = await get_client(session, connect.service)
    init = oauth1_init(context, client, connect.redirect_uri)
    answer = await providers.ask(
        context,
        workspace,
        provider,
        "oauth1-finish",
        {**init, **kept, "oauthVerifier": body.oauth_verifier},
        init_data=init,
    )
    tokens = _exchanged(connect, answer)
    account = await _store_connected(
        session,
        context,
        workspace,
        principal,
        connect,
        type_="oauth",
        name=tokens.get("name"),
        secrets={
            "accessToken": tokens.get("accessToken"),
            "accessTokenSecret": tokens.get("accessTokenSecret"),
            **(
                {"profileInfo": tokens["profileInfo"]}
                if isinstance(tokens.get("profileInfo"), dict)
                else {}
            ),
        },
        expires_at=None,
    )
    return account, connect.return_to


async def oauth1_credentials(
    session: AsyncSession, context: InstallerContext, account: Account
) -> Fresh:
    """An OAuth 1.0a account's tokens, with the consumer key and secret its components sign
    their calls with (OAuth 1.0a tokens do not expire)."""
    tokens: dict[str, Any] = context.secrets.decrypt_json(account.secrets)
    client = await session.get(AuthServiceClient, account.service)
    if client is not None:
        tokens = {
            **tokens,
            "consumerKey": client.client_id,
            "consumerSecret": context.secrets.decrypt_json(client.client_secret),
        }
    return Fresh(tokens)
