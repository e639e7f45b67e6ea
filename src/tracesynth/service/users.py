"""Service users: a token per user, kept hashed in a users file that `tracesynth serve users` manages.

The users file (`DATA_DIR/users.json`, mode 0600, written atomically) holds each user's name, role and
the SHA-256 of their token, never the token itself: `users add` prints the token once. A token is 32
random bytes (256 bits), so a plain SHA-256 is enough: a slow password hash (scrypt, argon2) protects
low-entropy secrets that can be guessed, and nobody can enumerate 2^256 tokens; a fast hash keeps the
check to microseconds on every request (status polling, item 10 of issue 14, is latency-bound).
Lookups go through a dict keyed by that hash: the timing of a lookup depends on the hash of what the
client sent, which tells nothing about any stored token.

Without a users file (or with an empty one) the service keeps its single-user modes: open (no token)
or one shared `--token`; that one principal is an admin named "".
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import atomic_open
from ..errors import UserError

log = logging.getLogger(__name__)

USERS_FILE = "users.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Token prefix: makes a leaked token easy to recognise (and to grep for) in logs and repositories.
TOKEN_PREFIX = "ts_"


@dataclass(frozen=True)
class User:
    """Who a request acts for. Admins see and manage every upload and job; others only their own."""

    name: str
    admin: bool = False

    def may_see(self, owner: str) -> bool:
        return self.admin or owner == self.name


#: The principal of the single-user modes (no users file): owns everything, like today's service.
SOLE_USER = User(name="", admin=True)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _read(path: Path) -> list[dict[str, Any]]:
    """The user entries of a users file ([] when absent); a damaged file is a UserError naming it."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        users = data["users"]
        for u in users:
            if not (isinstance(u["name"], str) and isinstance(u["token_sha256"], str)):
                raise TypeError("name and token_sha256 must be strings")
            bool(u.get("admin", False))
        return list(users)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a tracesynth users file ({exc}); fix it or remove it and add the users "
                        "again with `tracesynth serve users add`") from None


def _write(path: Path, users: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as fh:
        os.chmod(fh.name, 0o600)  # token hashes: readable by the server's account only
        json.dump({"version": 1, "users": users}, fh, indent=2)


def add_user(path: Path, name: str, admin: bool = False) -> str:
    """Add a user and return their new token (shown once; only its hash is stored)."""
    if not _NAME.match(name):
        raise UserError(f"user name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                        "letter or digit")
    users = _read(path)
    if any(u["name"] == name for u in users):
        raise UserError(f"{path}: user {name!r} exists; remove it first (`tracesynth serve users remove "
                        f"{name}`) to issue a new token")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    users.append({"name": name, "admin": bool(admin), "token_sha256": token_hash(token), "created": time.time()})
    _write(path, users)
    return token


def remove_user(path: Path, name: str) -> None:
    users = _read(path)
    kept = [u for u in users if u["name"] != name]
    if len(kept) == len(users):
        raise UserError(f"{path}: no user {name!r} (see `tracesynth serve users list`)")
    _write(path, kept)


def list_users(path: Path) -> list[User]:
    return [User(u["name"], bool(u.get("admin", False))) for u in _read(path)]


class UserBook:
    """Token -> User for a running server: the users file (re-read when it changes, so users added or
    removed while the server runs take effect at once) plus the optional shared `--token`."""

    def __init__(self, path: Path, shared_token: str | None = None):
        self.path = path
        self._shared = token_hash(shared_token) if shared_token else None
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, User] = {}
        self._loaded = False
        self._refresh()

    @property
    def multi_user(self) -> bool:
        """True when the users file names at least one user: every request then needs a token."""
        self._refresh()
        return bool(self._by_hash)

    @property
    def required(self) -> bool:
        """True when requests must carry a token (users file or shared token)."""
        return self.multi_user or self._shared is not None

    def authenticate(self, token: str | None) -> User | None:
        """The user this token belongs to; None for a missing or unknown token."""
        if not token:
            return None
        self._refresh()
        digest = token_hash(token)
        if self._shared is not None and secrets.compare_digest(digest, self._shared):
            return SOLE_USER
        return self._by_hash.get(digest)

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        first = not self._loaded
        self._stamp = stamp
        try:
            self._by_hash = {u["token_sha256"]: User(u["name"], bool(u.get("admin", False)))
                             for u in _read(self.path)}
        except UserError as exc:
            if first:  # at start-up: `tracesynth serve` stops with this message (exit code 2)
                raise
            # while serving: keep the users last read (a half-edited file must not lock everyone out
            # or turn requests into 500s) until the file changes again
            log.error("%s; still using the users read before", exc)
        self._loaded = True
