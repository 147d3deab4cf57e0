"""A small OpenID Connect provider the tests run on loopback, and a browser that walks a
sign-in through it.

It speaks the real protocol over HTTP: discovery, JWKS, the authorization endpoint (which
signs in `provider.person` at once, as if they had typed their password), a token endpoint
that authenticates the client, checks the PKCE verifier and spends each code once, RS256 ID
tokens, and user-info (OpenID Connect's, and GitHub's shape at `/user`). `id_token_changes`
alters the claims of the next ID tokens (a wrong nonce, audience or expiry), as a broken or
hostile provider would. Built on starlette and joserfc (authlib's JOSE library), with authlib's
PKCE and token helpers.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from roost.testing import loopback_listener, serve_in_thread
from tests.conftest import (
    RunningServer,
    drop_pg_schemas,
    require_postgres,
    start_server,
)

APP = "http://app.test/signed-in"


@dataclass
class Person:
    """Who is signed in at the provider."""

    sub: str
    email: str
    email_verified: bool = True
    given_name: str = "Ada"


@dataclass
class OidcProvider:
    url: str
    client_id: str
    client_secret: str
    person: Person
    id_token_changes: dict[str, Any] = field(default_factory=dict)
    """claims to set in the ID tokens issued from now on (a None value removes the claim)"""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "k1"}))
    signing_key: RSAKey | None = None
    """a key to sign ID tokens with instead of the published one (a forger's)"""
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, Person] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
                Route("/user", self.github_user),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "why": "PKCE"}, status_code=400)
        code = generate_token(32)
        self.codes[code] = {
            "redirect_uri": query["redirect_uri"],
            "challenge": query["code_challenge"],
            "nonce": query.get("nonce"),
            "person": self.person,
            "used": False,
        }
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))  # no multipart parser needed
        if not self._client_authenticated(request.headers.get("authorization", ""), form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.get(str(form.get("code")))
        if grant is None or grant["used"]:  # a code works once (RFC 6749 4.1.2)
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        grant["used"] = True
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant", "why": "redirect_uri"}, status_code=400)
        if create_s256_code_challenge(str(form.get("code_verifier"))) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "why": "PKCE"}, status_code=400)
        person: Person = grant["person"]
        access = generate_token(32)
        self.tokens[access] = person
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": person.sub,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "email": person.email,
            "email_verified": person.email_verified,
            "given_name": person.given_name,
        }
        if grant["nonce"] is not None:
            claims["nonce"] = grant["nonce"]
        for name, value in self.id_token_changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.signing_key or self.key)
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )

    def _client_authenticated(self, authorization: str, form: dict[str, str]) -> bool:
        """client_secret_basic, or (GitHub's way) the secret in the form."""
        if authorization.startswith("Basic "):
            pair = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = pair.partition(":")
            return (unquote(client_id), unquote(secret)) == (self.client_id, self.client_secret)
        sent = (form.get("client_id"), form.get("client_secret"))
        return sent == (self.client_id, self.client_secret)

    def _person_of(self, request: Request) -> Person | None:
        header = request.headers.get("authorization", "")
        return self.tokens.get(header.removeprefix("Bearer "))

    async def userinfo(self, request: Request) -> Response:
        person = self._person_of(request)
        if person is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(
            {"sub": person.sub, "email": person.email, "email_verified": person.email_verified}
        )

    async def github_user(self, request: Request) -> Response:
        """GitHub's `/user`: a numeric id, a login, a public email, no word on verification."""
        person = self._person_of(request)
        if person is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse({"id": int(person.sub), "login": "octo", "email": person.email})


@contextmanager
def oidc_provider(person: Person) -> Iterator[OidcProvider]:
    """A provider on a free loopback port, signing in `person`, for the `with` block."""
    with loopback_listener() as (listener, port):
        provider = OidcProvider(
            url=f"http://127.0.0.1:{port}",
            client_id=f"client-{secrets.token_hex(4)}",
            client_secret=f"secret:{secrets.token_urlsafe(16)}",  # a ':' tests the encoding
            person=person,
        )
        config = uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = serve_in_thread(server, listener, "the test provider")
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# -- the user's browser ---------------------------------------------------------------------


def at_provider(url: str) -> str:
    """The user opens the authorization URL; the provider signs them in and answers the
    callback URL it sends the browser to."""
    response = httpx.get(url, follow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def back_at_server(callback: str) -> httpx.Response:
    """The browser follows the provider's redirect to the Roost callback."""
    return httpx.get(callback, follow_redirects=False, timeout=30)


def back_at_app(callback: str) -> dict[str, str]:
    """Where the Roost callback sends the browser on: the app page's query parameters."""
    response = back_at_server(callback)
    assert response.status_code == 303, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


def walk(url: str) -> dict[str, str]:
    """The whole round trip: provider, Roost callback, back at the app."""
    return back_at_app(at_provider(url))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def signin_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server whose sign-ins may come back to http://app.test/."""
    backend: str = request.param
    if backend == "postgresql":
        require_postgres()
    data_dir: Path = tmp_path_factory.mktemp(f"oidc-{backend}")
    # tests verify many addresses by mail, all from 127.0.0.1
    running = start_server(
        data_dir, backend, auth_redirect_urls=["http://app.test/"], mails_per_client=10_000
    )
    yield running
    running.stop()
    if backend == "postgresql":
        drop_pg_schemas(running.settings.pg_schema_prefix)
