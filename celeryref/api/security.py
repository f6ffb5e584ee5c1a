"""Bearer-token auth (``API_TOKEN``): every endpoint but ``/healthz``, ``/readyz``, the
catalogs (``/catalog``, ``GET /workflows``) and the OpenAPI document."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from celeryref.settings import settings

_bearer = HTTPBearer(auto_error=False, description="API_TOKEN from the environment")


async def require_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <API_TOKEN>``.

    ``async``: checked on the event loop, so an ``async`` route behind it (``/workers``)
    never needs a request thread."""
    if credentials is None or not hmac.compare_digest(
        credentials.credentials.encode(), settings.api_token.get_secret_value().encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


Authenticated = Depends(require_token)
