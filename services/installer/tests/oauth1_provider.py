"""A real OAuth 1.0a provider for the accounts tests: authlib's OAuth 1 authorization server
(temporary credentials, authorization, token credentials; HMAC-SHA1 signatures and nonces
checked) and its resource protector on ``/me``, in a small Flask app on loopback."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth1 import (
    AuthorizationServer,
    ResourceProtector,
    current_credential,
)
from authlib.integrations.flask_oauth1.cache import (
    register_nonce_hooks,
    register_temporary_credential_hooks,
)
from authlib.oauth1 import ClientMixin, TokenCredentialMixin
from flask import Flask, jsonify
from oauth_provider import serving


@dataclass(frozen=True)
class User:
    id: str
    username: str

    def get_user_id(self) -> str:
        return self.id


USER = User(id="u-7", username="ann-on-legacy")


class Cache:
    """What authlib's cache hooks need (temporary credentials, nonces), in memory."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            return self._items.get(key)

    def set(self, key: str, value: Any, timeout: int | None = None) -> None:
        with self._lock:
            self._items[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._items


@dataclass
class Consumer(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uri: str

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_client_secret(self) -> str:
        return self.client_secret

    def get_rsa_public_key(self) -> None:
        return None


@dataclass
class TokenCredential(TokenCredentialMixin):  # type: ignore[misc]
    client_id: str
    oauth_token: str
    oauth_token_secret: str
    user: User

    def get_oauth_token(self) -> str:
        return self.oauth_token

    def get_oauth_token_secret(self) -> str:
        return self.oauth_token_secret

    def get_client_id(self) -> str:
        return self.client_id

    def get_user_id(self) -> str:
        return self.user.id


@dataclass
class Provider1:
    url: str = ""
    consumers: dict[str, Consumer] = field(default_factory=dict)
    tokens: dict[str, TokenCredential] = field(default_factory=dict)

    def register(self, redirect_uri: str) -> Consumer:
        consumer = Consumer(
            client_id=f"ck-{secrets.token_hex(4)}",
            client_secret=secrets.token_urlsafe(18),
            redirect_uri=redirect_uri,
        )
        self.consumers[consumer.client_id] = consumer
        return consumer


def _app(state: Provider1) -> Flask:
    app = Flask("oauth1-provider")
    cache = Cache()
    server = AuthorizationServer(app, query_client=lambda client_id: state.consumers.get(client_id))
    register_nonce_hooks(server, cache)
    register_temporary_credential_hooks(server, cache)

    def create_token_credential(token: dict[str, str], temporary: Any) -> TokenCredential:
        credential = TokenCredential(
            client_id=temporary.get_client_id(),
            oauth_token=token["oauth_token"],
            oauth_token_secret=token["oauth_token_secret"],
            user=USER,
        )
        state.tokens[credential.oauth_token] = credential
        return credential

    server.register_hook("create_token_credential", create_token_credential)

    def query_token(client_id: str, oauth_token: str) -> TokenCredential | None:
        found = state.tokens.get(oauth_token)
        return found if found and found.client_id == client_id else None

    protect = ResourceProtector(
        app,
        query_client=lambda client_id: state.consumers.get(client_id),
        query_token=query_token,
        exists_nonce=lambda *args: False,
    )

    @app.post("/initiate")
    def initiate() -> Any:
        return server.create_temporary_credentials_response()

    @app.get("/authorize")
    def authorize() -> Any:
        # The user is signed in at the provider and consents.
        return server.create_authorization_response(grant_user=USER)

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.get("/me")
    @protect()
    def me() -> Any:
        return jsonify(
            {"id": current_credential.user.id, "username": current_credential.user.username}
        )

    return app


@contextmanager
def oauth1_provider() -> Iterator[Provider1]:
    state = Provider1()
    with serving(_app(state)) as state.url:
        yield state
