"""A real OAuth 2 provider for the accounts tests: authlib's authorization server (authorization
code with PKCE required, refresh tokens rotated) in a small Flask app on loopback, with an
in-memory store, one user who always consents, and a ``/userinfo`` resource."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

USER = {"id": "u-1", "email": "ann@provider.test"}
SECRET_METHODS = ["client_secret_post", "client_secret_basic"]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    client_id: str
    access_token: str
    refresh_token: str | None
    scope: str
    expires_in: int
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in


@dataclass
class Provider:
    """The provider's state, which the tests read (``refreshes``) and change (``revoke_all``)."""

    url: str = ""
    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    refreshes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, redirect_uri: str) -> Client:
        client = Client(
            client_id=f"client-{secrets.token_hex(4)}",
            client_secret=secrets.token_urlsafe(24),
            redirect_uris=[redirect_uri],
        )
        self.clients[client.client_id] = client
        return client

    def revoke_all(self) -> None:
        with self.lock:
            for token in self.tokens:
                token.revoked = True

    def revoke_access(self) -> None:
        """The access tokens stop working (as a provider that rotated its keys); refresh
        tokens still do."""
        with self.lock:
            for token in self.tokens:
                token.expires_in = -1

    def bearer(self, header: str) -> Token | None:
        value = header.removeprefix("Bearer ")
        with self.lock:
            for token in self.tokens:
                if token.access_token == value and not token.revoked and not token.is_expired():
                    return token
        return None


def _app(state: Provider) -> Flask:
    app = Flask("oauth-provider")
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True

    def save_token(token: dict[str, Any], req: Any) -> None:
        with state.lock:
            state.tokens.append(
                Token(
                    client_id=req.client.client_id,
                    access_token=token["access_token"],
                    refresh_token=token.get("refresh_token"),
                    scope=token.get("scope", ""),
                    expires_in=int(token["expires_in"]),
                )
            )

    server = AuthorizationServer(
        app, query_client=lambda client_id: state.clients.get(client_id), save_token=save_token
    )

    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

        def save_authorization_code(self, code: str, req: Any) -> None:
            state.codes[code] = Code(
                code=code,
                client_id=req.client.client_id,
                redirect_uri=req.payload.redirect_uri,
                scope=req.scope or "",
                code_challenge=req.payload.data.get("code_challenge"),
                code_challenge_method=req.payload.data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = state.codes.get(code)
            return found if found and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> dict[str, str]:
            return USER

    class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            with state.lock:
                for token in state.tokens:
                    if token.refresh_token == refresh_token and not token.revoked:
                        return token
            return None

        def authenticate_user(self, credential: Token) -> dict[str, str]:
            return USER

        def revoke_old_credential(self, refresh_token: Token) -> None:
            with state.lock:
                refresh_token.revoked = True
                state.refreshes += 1

    server.register_grant(CodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshGrant)

    @app.get("/authorize")
    def authorize() -> Any:
        # The user is signed in at the provider and consents to the request the grant validated
        # (authlib's two steps; the one-step call without ``grant`` is deprecated).
        try:
            grant = server.get_consent_grant(end_user=USER)
        except OAuth2Error as error:
            return server.handle_error_response(None, error)
        return server.create_authorization_response(grant_user=USER, grant=grant)

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.get("/userinfo")
    def userinfo() -> Any:
        if state.bearer(request.headers.get("Authorization", "")) is None:
            return jsonify({"error": "invalid_token"}), 401
        return jsonify(USER)

    return app


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """A provider's Flask app on a loopback port, in a thread; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@contextmanager
def oauth_provider() -> Iterator[Provider]:
    state = Provider()
    with serving(_app(state)) as state.url:
        yield state
