"""Who may stop, rename and delete a run: its owner, or the lecturer.

A classroom shares one server, and a shared link to a run is a feature: anyone may open and watch
any run. Managing one is not: a run belongs to the browser that started it. Streamlit (1.67) has
no browser identity of its own without an identity provider, so the app gives each browser one: a
random *owner id* signed with a server secret (HMAC-SHA256), kept in a cookie. The signature is
what makes it an identity: a student who edits the cookie to another student's id has no valid
signature for it, and a forged or damaged token reads as no identity at all.

The secret is ``$MTL_SECRET`` or, when that is unset, a random one kept in a file ``secret`` beside
the run store (mode 0600), so identities survive a server restart. The lecturer key,
``$MTL_LECTURER_KEY``, unlocks every run (unset: there is no lecturer). Runs without an owner (the
command line, a terminal's sweep) belong to whoever runs the machine: only the lecturer manages
them from a page.

This module knows nothing of browsers or cookies' transport (pages/_identity.py does); the store
below it keeps the owner of each run and checks nothing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

SECRET_ENV = "MTL_SECRET"
LECTURER_ENV = "MTL_LECTURER_KEY"
SECRET_FILE = "secret"  # beside the store file
DEFAULT_STORE = Path("runs") / "mtl.db"  # the store's own default (mtl_core.runs.store.DEFAULT_PATH)

MAX_TOKEN_CHARS = 128  # an owner token is 22 + 1 + 43 characters; anything longer is not one
MAX_KEY_CHARS = 1_000  # a typed lecturer key longer than this is refused before it is hashed
_OWNER_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes of HMAC-SHA256, URL-safe base64, unpadded

REFUSAL = ("This run belongs to someone else: you can watch it, but only the person who started it "
           "(or the lecturer) can stop, rename or delete it.")


class OwnershipError(PermissionError):
    """Someone asked to manage a run they may not; the message is :data:`REFUSAL`."""

    def __init__(self, message: str = REFUSAL) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Actor:
    """Who is asking: a browser's ``owner`` id (None: no identity) and whether it holds the
    lecturer key."""

    owner: str | None
    lecturer: bool = False


def may_manage(actor: Actor, run_owner: str | None) -> bool:
    """Whether ``actor`` may stop, rename or delete a run owned by ``run_owner``.

    The lecturer may manage every run; a browser its own runs; a run without an owner (the
    command line) only the lecturer, since nobody in the classroom started it.
    """
    if actor.lecturer:
        return True
    return actor.owner is not None and run_owner is not None and hmac.compare_digest(
        actor.owner.encode(), run_owner.encode())


class Identities:
    """Issues and checks signed owner tokens (``<owner id>.<signature>``) and lecturer tokens
    under one server secret."""

    def __init__(self, secret: bytes, *, lecturer_key: str | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("the identity secret must be at least 16 bytes")
        self._secret = secret
        # Only a digest is kept: a lecturer token names the key it was issued under, so that a new
        # key (the old one leaked) ends every lecturer cookie issued before it.
        self._lecturer_digest = (hashlib.sha256(lecturer_key.encode()).digest()
                                 if lecturer_key else None)

    @classmethod
    def for_store(cls, store_path: str | os.PathLike[str] | None = None) -> Identities:
        """The server's identities: secret from ``$MTL_SECRET`` or the file beside the store at
        ``store_path`` (None: ``$MTL_STORE``, else the store's default), lecturer key from
        ``$MTL_LECTURER_KEY``."""
        return cls(load_secret(store_path), lecturer_key=os.environ.get(LECTURER_ENV) or None)

    # --- owners ------------------------------------------------------------------------------------

    def issue_token(self) -> str:
        """A new browser identity: a random owner id and its signature."""
        owner = secrets.token_urlsafe(16)  # 128 bits: nobody guesses another's id
        return f"{owner}.{self._sign(b'owner', owner)}"

    def verify(self, token: object) -> str | None:
        """The owner id a token carries, or None for anything that is not a token this server
        signed (missing, too long, damaged, edited, signed under another secret)."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            return None
        owner, dot, signature = token.partition(".")
        if not dot or not _OWNER_ID.fullmatch(owner) or not _SIGNATURE.fullmatch(signature):
            return None
        return owner if hmac.compare_digest(signature, self._sign(b"owner", owner)) else None

    # --- the lecturer ------------------------------------------------------------------------------

    @property
    def has_lecturer(self) -> bool:
        """Whether the server has a lecturer key at all."""
        return self._lecturer_digest is not None

    def check_lecturer_key(self, entered: object) -> bool:
        """Whether ``entered`` is the lecturer key (compared as digests: in constant time, whatever
        its length); always False when the server has none."""
        if self._lecturer_digest is None or not isinstance(entered, str) or not entered \
                or len(entered) > MAX_KEY_CHARS:
            return False
        return hmac.compare_digest(hashlib.sha256(entered.encode()).digest(), self._lecturer_digest)

    def lecturer_token(self, owner: str) -> str:
        """A token saying that the browser of ``owner`` entered the lecturer key (kept as a second
        cookie, so a reload stays unlocked). Bound to the owner and to the current key."""
        if self._lecturer_digest is None:
            raise ValueError("the server has no lecturer key")
        return self._sign(b"lecturer", owner)

    def verify_lecturer(self, token: object, owner: str | None) -> bool:
        """Whether ``token`` is the lecturer token of ``owner`` under the current key."""
        if self._lecturer_digest is None or owner is None or not isinstance(token, str) \
                or not _SIGNATURE.fullmatch(token):
            return False
        return hmac.compare_digest(token, self._sign(b"lecturer", owner))

    def _sign(self, purpose: bytes, owner: str) -> str:
        # The purpose keeps an owner token from passing as a lecturer token (and back); the key's
        # digest is part of a lecturer token only.
        key_part = (self._lecturer_digest or b"") if purpose == b"lecturer" else b""
        message = b"\0".join((purpose, owner.encode(), key_part))
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        # URL-safe base64 without padding: safe in a cookie value, no quoting needed.
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secret_path(store_path: str | os.PathLike[str] | None = None) -> Path:
    """Where the server's secret file lives: beside the store file (resolved as the store does)."""
    chosen = store_path if store_path is not None else os.environ.get("MTL_STORE") or DEFAULT_STORE
    return Path(chosen).expanduser().absolute().parent / SECRET_FILE


def load_secret(store_path: str | os.PathLike[str] | None = None) -> bytes:
    """``$MTL_SECRET``, else the secret file beside the store, created (mode 0600, 32 random
    bytes) on first use. A folder that cannot hold the file gets a secret for this process only:
    the app still works, and identities last until the server restarts."""
    from_env = os.environ.get(SECRET_ENV, "")
    if from_env:
        return from_env.encode()
    path = secret_path(store_path)
    try:
        return _read_or_create(path)
    except OSError:
        return secrets.token_bytes(32)


def _read_or_create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        secret = path.read_bytes().strip()
        if len(secret) >= 32:
            return secret
    try:
        # O_EXCL: two servers starting at once on one store agree on one secret (the loser reads).
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < 32:
            raise OSError(f"{path} holds no usable secret") from None
        return secret
    secret = secrets.token_hex(32).encode()
    with os.fdopen(descriptor, "wb") as file:
        file.write(secret)
    return secret
