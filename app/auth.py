"""Bearer-token authentication: `Authorization: Bearer <JWT>`, HS256-signed with the stack's `JWT_SECRET_KEY`.

Verification is PyJWT's, not ours: the algorithm list is pinned to HS256 (so `alg: none` and any algorithm
confusion are refused by the library, https://pyjwt.readthedocs.io/en/stable/api.html#jwt.decode), and `exp`
and `sub` are required claims. `sub` is the user id; it becomes a path segment of S3 keys, so only a short
id of letters, digits, `-` and `_` is accepted (a token whose `sub` is anything else is refused like a bad
signature, rather than being escaped into some other user's prefix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""UUIDs, integers and slugs; nothing that could act as a path (no `/`, `.`, spaces or control characters)."""


class Unauthenticated(Exception):
    """No usable bearer token; the message says why (safe to show: it never echoes the token)."""


@dataclass(frozen=True)
class User:
    id: str


def authenticate(authorization: str | None, secret: str) -> User:
    """The user of a request's `Authorization` header, or :class:`Unauthenticated`."""
    if not authorization:
        raise Unauthenticated("missing Authorization header (expected: Bearer <token>)")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Authorization must be: Bearer <token>")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token expired") from None
    except jwt.InvalidTokenError as error:
        # Includes a bad signature, `alg: none`, a malformed token and missing claims.
        raise Unauthenticated(f"invalid token: {error}") from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not USER_ID.match(subject):
        raise Unauthenticated("invalid token: sub must be a user id of letters, digits, '-' or '_' (1-64)")
    return User(id=subject)
