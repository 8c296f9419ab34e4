"""Bearer tokens for the tracker: Ed25519 keys, signed JWTs, and their checking.

RFC 7846 section 6.1 recommends OAuth 2.0 bearer tokens (RFC 6750) handed out by an enrollment
service together with PeerIDs.  ppsp's tokens are JSON Web Tokens (RFC 7519) signed with EdDSA
over Ed25519 (RFC 8037); PyJWT does the JWT work and ``cryptography`` the keys.  A token's
claims (PROFILE.md, "Trust"):

- ``sub``: the PeerID the token was issued for;
- ``iat``, ``exp``: when it was issued and when it stops being valid (Unix seconds);
- ``swarms`` (optional): the only swarm IDs the peer may join; absent, any swarm;
- ``role`` (optional): ``operator`` for an operator's token, which also opens the dashboard
  and its API (``ppsp token --operator``).

The issuer keeps the private key (``ppsp token --key``); the tracker holds only the public key
(``ppsp tracker --auth-key``).  Keys are ordinary PEM files (PKCS#8 private keys,
SubjectPublicKeyInfo public keys, as ``openssl genpkey -algorithm ed25519`` writes them).  The
tracker's file may hold several public keys (at most :data:`MAX_PUBLIC_KEYS`), one after the
other: a token any of them verifies is taken.  So a key is rotated without refusing a valid
token: the new public key is added and the tracker reads its file again (SIGHUP), the issuer
signs with the new private key, and the old public key is removed once its last tokens expired.

Time is an argument everywhere (``now``, Unix seconds): PyJWT's own clock checks are turned off
and the same checks are made here against ``now``.  :class:`TokenVerifier` is what the HTTP
layer uses: it reads the ``Authorization`` header and keeps the tokens it verified, until they
expire, so that a peer's requests cost one signature check per token, not one per request.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ppsp.errors import BearerTokenError, KeyFileError
from ppsp.tracker.credentials import OPERATOR_ROLE, Credentials

__all__ = [
    "ALGORITHM",
    "DEFAULT_LEEWAY",
    "DEFAULT_TTL",
    "MAX_TOKEN_SWARMS",
    "OPERATOR_ROLE",
    "REALM",
    "REFUSAL_REASONS",
    "TokenVerifier",
    "bearer_challenge",
    "bearer_token",
    "generate_key_pair",
    "issue_token",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
    "refusal_reason",
    "verify_token",
    "write_key_pair",
]

ALGORITHM = "EdDSA"
"""The JWS algorithm of every token (RFC 8037: EdDSA, here with Ed25519 keys)."""

REALM = "ppsp"
"""The protection space named in ``WWW-Authenticate`` challenges."""

DEFAULT_TTL = 24 * 3600.0
"""Seconds a token stays valid unless told otherwise (one day)."""

DEFAULT_LEEWAY = 30.0
"""Seconds of clock difference tolerated between the issuer and the tracker."""

MAX_TOKEN_SWARMS = 10_000
"""Most swarm IDs a token's ``swarms`` claim may list."""

MAX_PUBLIC_KEYS = 8
"""Most public keys the tracker's key file may hold (a token is tried against each in turn)."""

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)

_DECODE_OPTIONS: Any = {
    # Times are checked against the caller's ``now`` below, not PyJWT's clock.
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    # The subject is checked below (PyJWT before 2.10 does not check it).
    "verify_sub": False,
    "verify_jti": False,
    "require": ["sub", "exp"],
}

_NOT_VALID_YET = "the token is not valid yet"
_ISSUED_LATER = "the token was issued in the future"
_NOT_YET = frozenset({_NOT_VALID_YET, _ISSUED_LATER})
"""Refusals that time may lift (so they are not remembered)."""

_NO_TOKEN = "no bearer token"
_MALFORMED_HEADER = "the Authorization header holds no well-formed bearer token"
_MALFORMED = "the token is malformed"
_NOT_EDDSA = f"the token is not signed with {ALGORITHM}"
_BAD_SIGNATURE = "the token's signature does not verify"
_EXPIRED = "the token has expired"
_NOT_A_PEER_ID = "the token's subject is not a PeerID"
_BAD_SWARMS = "the token's swarms claim is not a list of swarm IDs"
_BAD_ROLE = "the token's role claim is not a role name"
_TIME_CLAIMS = ("exp", "nbf", "iat")

REFUSAL_REASONS = (
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "bad_claims",
)
"""Why a request's token was refused, as counted on ``/metrics`` (:func:`refusal_reason`)."""

_REASONS: dict[str, str] = {
    _MALFORMED_HEADER: "malformed",
    _MALFORMED: "malformed",
    _NOT_EDDSA: "bad_signature",
    _BAD_SIGNATURE: "bad_signature",
    _EXPIRED: "expired",
    _NOT_VALID_YET: "not_yet_valid",
    _ISSUED_LATER: "not_yet_valid",
    _NOT_A_PEER_ID: "bad_claims",
    _BAD_SWARMS: "bad_claims",
    _BAD_ROLE: "bad_claims",
    **{f"the token has no {claim} claim": "bad_claims" for claim in _DECODE_OPTIONS["require"]},
    **{f"the token's {claim} claim is not a time": "bad_claims" for claim in _TIME_CLAIMS},
}
"""The reason of each refusal message this module writes."""

# RFC 6750 section 2.1: b64token, after the scheme and one or more spaces.
_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# RFC 7515 section 7.1: a JWS in compact form, three base64url parts without padding.
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

_MAX_REMEMBERED_REFUSAL = 2048
"""Longest refused token remembered (longer ones are verified again: they cost more to send)."""


# -- keys --------------------------------------------------------------------------------------


def generate_key_pair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    """A fresh Ed25519 key pair: the private key signs tokens, the public key checks them."""
    private_key = Ed25519PrivateKey.generate()
    return private_key, private_key.public_key()


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    """``private_key`` as an unencrypted PKCS#8 PEM (what ``openssl genpkey`` writes)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """``public_key`` as a SubjectPublicKeyInfo PEM (what ``openssl pkey -pubout`` writes)."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key_pair(
    private_path: Path,
    public_path: Path,
    private_key: Ed25519PrivateKey | None = None,
) -> Ed25519PrivateKey:
    """Write a key pair as PEM files: the private key readable by its owner only (mode 0600).

    A fresh pair unless ``private_key`` is given.  Existing files are never overwritten: a file
    already at either path raises :class:`~ppsp.errors.KeyFileError`, as does any other failure
    to write (with nothing left behind).  Returns the private key.
    """
    key = private_key if private_key is not None else generate_key_pair()[0]
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} exists already: not overwriting a key file")
    _write_new(private_path, private_key_pem(key), 0o600)
    try:
        _write_new(public_path, public_key_pem(key.public_key()), 0o644)
    except KeyFileError:
        private_path.unlink(missing_ok=True)
        raise
    return key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (whatever the umask) and write ``data`` to it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise KeyFileError(f"cannot create the key file {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; none are added
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write the key file {path}: {exc.strerror}") from None


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"no {what} file {path}") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path} is a directory, not a {what} file") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise KeyFileError(f"{path} is not a PEM file (no -----BEGIN line)")
    return data


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path`` (one-line KeyFileError otherwise)."""
    data = _read_key_file(path, "private key")
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise KeyFileError(f"{path} holds a public key: tokens are signed with the private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(f"{path} is encrypted: give an unencrypted private key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path} holds no private key that can be read") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds {_kind(key)} key: tokens need an Ed25519 key")
    return key


def load_public_key(path: Path) -> tuple[Ed25519PublicKey, ...]:
    """The Ed25519 public keys in the PEM file ``path``, in order: one, or several one after the
    other (at most :data:`MAX_PUBLIC_KEYS`; a key being rotated, see the module).  A one-line
    KeyFileError for a file that holds anything else.

    A private key is refused: the tracker needs only the public one, and should hold nothing
    that can make tokens.
    """
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyFileError(
            f"{path} holds a private key: give the tracker the public key only "
            "(openssl pkey -in PRIVATE.pem -pubout)"
        )
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(data)]
    if len(blocks) > MAX_PUBLIC_KEYS:
        raise KeyFileError(f"{path} holds {len(blocks)} keys: at most {MAX_PUBLIC_KEYS} are read")
    keys = []
    for block in blocks or [data]:
        try:
            key = serialization.load_pem_public_key(block)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFileError(f"{path} holds no public key that can be read") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"{path} holds {_kind(key)} key: tokens need an Ed25519 key")
        keys.append(key)
    return tuple(keys)


def _kind(key: object) -> str:
    """A key's algorithm with its article (``an RSA``, ``an EC``), for messages."""
    name = type(key).__name__.lstrip("_")
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    name = {"EllipticCurve": "EC"}.get(name, name) or "unknown"
    return f"{'an' if name[0] in 'AEIOUXRS' else 'a'} {name}"


# -- tokens ------------------------------------------------------------------------------------


def issue_token(
    private_key: Ed25519PrivateKey,
    peer_id: str,
    *,
    swarms: Iterable[str] | None = None,
    ttl: float = DEFAULT_TTL,
    now: float,
    role: str | None = None,
) -> str:
    """A signed token for ``peer_id``, valid from ``now`` for ``ttl`` seconds.

    ``swarms``, when given, becomes the ``swarms`` claim: the only swarms the peer may join (in
    the order given, each once).  ``role``, when given, becomes the ``role`` claim
    (:data:`OPERATOR_ROLE`: an operator's token, which opens the dashboard).  Raises ValueError
    for an empty PeerID, swarm ID or role, a TTL that is not a positive number of seconds, or
    more than :data:`MAX_TOKEN_SWARMS` swarms.
    """
    if not peer_id:
        raise ValueError("a token needs a PeerID")
    if not (math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"a token's lifetime must be a positive number of seconds, not {ttl}")
    issued = int(now)
    claims: dict[str, Any] = {"sub": peer_id, "iat": issued, "exp": math.ceil(now + ttl)}
    if swarms is not None:
        listed = list(dict.fromkeys(swarms))
        if any(not isinstance(swarm, str) or not swarm for swarm in listed):
            raise ValueError("a swarm ID in a token cannot be empty")
        if len(listed) > MAX_TOKEN_SWARMS:
            raise ValueError(f"a token lists at most {MAX_TOKEN_SWARMS} swarms")
        claims["swarms"] = listed
    if role is not None:
        if not isinstance(role, str) or not role:
            raise ValueError("a token's role cannot be empty")
        claims["role"] = role
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


def verify_token(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    now: float,
    leeway: float = DEFAULT_LEEWAY,
) -> Credentials:
    """The credentials a token proves at ``now``, or :class:`~ppsp.errors.BearerTokenError`.

    The token must be an EdDSA-signed JWT that ``public_key`` verifies, whose ``sub`` is a
    non-empty string, whose ``exp`` has not passed (``leeway`` seconds of clock difference
    allowed, as for ``nbf`` and ``iat``, which may not lie in the future), whose ``swarms``,
    when present, is a list of swarm IDs, and whose ``role``, when present, is a name (a
    non-empty string of at most 64 characters).  The error's message says which rule failed.
    """
    try:
        claims = jwt.decode(token, public_key, algorithms=[ALGORITHM], options=_DECODE_OPTIONS)
    except jwt.InvalidAlgorithmError:
        raise BearerTokenError(_NOT_EDDSA) from None
    except jwt.InvalidSignatureError:
        raise BearerTokenError(_BAD_SIGNATURE) from None
    except jwt.MissingRequiredClaimError as exc:
        raise BearerTokenError(f"the token has no {exc.claim} claim") from None
    except jwt.PyJWTError:
        raise BearerTokenError(_MALFORMED) from None
    return _credentials(claims, now, leeway)


def _credentials(claims: Mapping[str, Any], now: float, leeway: float) -> Credentials:
    """Check a verified token's claims against ``now``; its :class:`Credentials`."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise BearerTokenError(_NOT_A_PEER_ID)
    expires = _time_claim(claims, "exp")
    assert expires is not None  # required by the decode options
    if now > expires + leeway:
        raise BearerTokenError(_EXPIRED)
    not_before = _time_claim(claims, "nbf")
    if not_before is not None and now + leeway < not_before:
        raise BearerTokenError(_NOT_VALID_YET)
    issued = _time_claim(claims, "iat")
    if issued is not None and now + leeway < issued:
        raise BearerTokenError(_ISSUED_LATER)
    swarms: frozenset[str] | None = None
    if "swarms" in claims:
        listed = claims["swarms"]
        if (
            not isinstance(listed, list)
            or len(listed) > MAX_TOKEN_SWARMS
            or not all(isinstance(swarm, str) and swarm for swarm in listed)
        ):
            raise BearerTokenError(_BAD_SWARMS)
        swarms = frozenset(listed)
    role = claims.get("role")
    if role is not None and (not isinstance(role, str) or not role or len(role) > 64):
        raise BearerTokenError(_BAD_ROLE)
    return Credentials(subject=subject, swarms=swarms, expires=float(expires), role=role)


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 section 2) as a float, None when absent."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BearerTokenError(f"the token's {name} claim is not a time")
    return float(value)


# -- requests ----------------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value (RFC 6750 section 2.1).

    Raises :class:`~ppsp.errors.BearerTokenError`, with ``missing`` set, when there is no
    header or it uses another scheme (RFC 6750 section 3.1: no error code then), and without
    it when the Bearer credentials are malformed.
    """
    if authorization is None:
        raise BearerTokenError(_NO_TOKEN, missing=True)
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise BearerTokenError(_NO_TOKEN, missing=True)
    token = rest.strip(" ")
    if not _BEARER.fullmatch(token):
        raise BearerTokenError(_MALFORMED_HEADER)
    return token


def bearer_challenge(error: BearerTokenError | None = None) -> str:
    """The ``WWW-Authenticate`` value answering a refused request (RFC 6750 section 3).

    Without a token presented (``error`` None or ``missing``) the challenge names the realm
    only; otherwise ``error="invalid_token"`` and the error's message as the description.
    """
    if error is None or error.missing:
        return f'Bearer realm="{REALM}"'
    # error_description: %x20-21 / %x23-5B / %x5D-7E (no quote, no backslash).
    description = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else " " for ch in str(error))[
        :200
    ]
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


def refusal_reason(error: BearerTokenError) -> str:
    """Why a token was refused, one of :data:`REFUSAL_REASONS` (a label for ``/metrics``).

    ``missing``: no bearer token at all; ``malformed``: not a bearer token or not a JWT;
    ``bad_signature``: not EdDSA, or not signed by the key; ``expired``; ``not_yet_valid``
    (``nbf`` or ``iat`` in the future); ``bad_claims``: a claim missing or of the wrong kind.
    """
    if error.missing:
        return "missing"
    return _REASONS.get(str(error), "malformed")


class TokenVerifier:
    """Checks the bearer tokens of requests against public keys, keeping verified tokens.

    ``public_key`` is one key or several (a key being rotated): a token any of them verifies is
    taken, the keys tried in order.

    A verified token is kept, by its text, until it expires: a peer's later requests cost a
    dictionary look-up instead of a signature check.  Only tokens the key signed are kept, so
    the cache holds what the issuer handed out (a signature's text has at most 16 spellings).
    At most ``cache_size`` tokens are kept; when full, expired ones are dropped, and if none
    has expired the oldest half goes.  Refused tokens are kept too (fewer, ``cache_size // 8``,
    none longer than 2 KiB), so that a token sent again and again is refused without being
    verified again.
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey | tuple[Ed25519PublicKey, ...],
        *,
        leeway: float = DEFAULT_LEEWAY,
        cache_size: int = 65_536,
    ) -> None:
        keys = public_key if isinstance(public_key, tuple) else (public_key,)
        if not keys:
            raise ValueError("a token verifier needs a public key")
        self.public_keys = keys
        self.leeway = leeway
        self.cache_size = max(1, cache_size)
        self._valid: dict[str, Credentials] = {}
        self._refused: dict[str, str] = {}  # token -> why it was refused

    def check(self, authorization: str | None, now: float) -> Credentials:
        """The credentials of a request's ``Authorization`` header value at ``now`` (Unix time).

        Raises :class:`~ppsp.errors.BearerTokenError` (see :func:`bearer_token` and
        :func:`verify_token`); a token that is not a JWS in compact form (three base64url
        parts, no padding) is malformed without further ado.
        """
        # Tokens are kept by their own text, never by the header's: spelling the header
        # differently (spaces, the scheme's case) cannot add entries.  The usual spelling
        # costs a slice and a look-up.
        known: Credentials | None = None
        if authorization is not None and authorization.startswith("Bearer "):
            token = authorization[7:]
            known = self._valid.get(token)
            if known is None and token not in self._refused:
                token = bearer_token(authorization)
                known = self._valid.get(token)
        else:
            token = bearer_token(authorization)
            known = self._valid.get(token)
        if known is not None:
            assert known.expires is not None
            if now <= known.expires + self.leeway:
                return known
            del self._valid[token]
            raise BearerTokenError(_EXPIRED)
        refused = self._refused.get(token)
        if refused is not None:
            raise BearerTokenError(refused)
        if not _JWS.fullmatch(token):
            raise BearerTokenError(_MALFORMED)
        try:
            credentials = self._verify(token, now)
        except BearerTokenError as exc:
            if str(exc) not in _NOT_YET:  # a token not valid yet may become valid
                self._remember_refusal(token, str(exc))
            raise
        self._remember(token, credentials, now)
        return credentials

    def _verify(self, token: str, now: float) -> Credentials:
        """:func:`verify_token` with each key in turn, until one verifies the signature."""
        *others, last = self.public_keys
        for key in others:
            try:
                return verify_token(token, key, now=now, leeway=self.leeway)
            except BearerTokenError as exc:
                if str(exc) != _BAD_SIGNATURE:
                    raise  # the signature verified (or the token is unusable whatever the key)
        return verify_token(token, last, now=now, leeway=self.leeway)

    def _remember(self, token: str, credentials: Credentials, now: float) -> None:
        valid = self._valid
        if len(valid) >= self.cache_size:
            leeway = self.leeway
            for key in [k for k, c in valid.items() if (c.expires or 0.0) + leeway < now]:
                del valid[key]
            if len(valid) >= self.cache_size:
                for key in list(valid)[: max(1, len(valid) // 2)]:
                    del valid[key]
        valid[token] = credentials

    def _remember_refusal(self, token: str, reason: str) -> None:
        if len(token) > _MAX_REMEMBERED_REFUSAL:
            return
        refused = self._refused
        if len(refused) >= max(1, self.cache_size // 8):
            refused.clear()
        refused[token] = reason
