"""A live stream's identity: the source's Ed25519 key, the live swarm ID and the description.

RFC 7574 section 6.1 makes the swarm ID of a live stream the injector's public key.  The swarm
IDs of this implementation have one form everywhere (64 lower-case hex digits, PROFILE.md
"Content"), so the live swarm ID is a *hash* of the key, in a domain of its own::

    swarm_id = hex(SHA-256(b"ppsp-live/1\\x00" || 0x0F || raw 32-byte Ed25519 public key))

``0x0F`` is the DNSSEC algorithm number of Ed25519 (RFC 8080), which keeps the RFC's "algorithm
byte, then the DNSKEY-encoded key" shape inside the hash.  A stored-content swarm ID hashes a
JSON document (it starts with ``{``), so the two kinds can never collide; they cannot be told
apart by looking at the ID, only by the description a peer fetches for it (``format``
``ppsp-live/1`` here, ``ppsp-content/1`` for stored content, see :func:`is_live_description`).

The :class:`LiveDescription` tells a viewer everything it needs before the first chunk: the
public key, the chunk duration, the media type, a name, the live window and the source's start
reference (``start_ms``, Unix time in milliseconds when the stream started; it also tells one
session of a key from the next).  It has one canonical byte form, compact JSON with sorted keys::

    {"algorithm":"ed25519","chunk_ms":1000,"format":"ppsp-live/1","media_type":"video/mp2t",
     "name":"cam","public_key":"<64 hex>","signature":"<128 hex>","start_ms":1700000000000,
     "window_s":30}

The description can be fetched from any peer, so the source signs it: ``signature`` is the
Ed25519 signature of ``b"ppsp-live-description/1\\x00"`` followed by the same JSON without the
``signature`` member.  Every :class:`LiveDescription` object is checked when it is built: one
that exists is validly signed by the key it names.

Keys are stored as unencrypted PKCS#8 PEM in files of mode 0600 (:func:`save_key`,
:func:`create_key`, :func:`load_key`), the only file I/O in the live modules.  A source's key
lives in the user's data directory, one per stream name (:func:`default_key_path`):
``$XDG_DATA_HOME/ppsp/live-keys/NAME.key``, ``~/.local/share/ppsp/live-keys/NAME.key`` when
``XDG_DATA_HOME`` is unset or not absolute (the XDG Base Directory rules), in a directory of
mode 0700 (:func:`prepare_key_directory`).  So the swarm ID of a stream does not depend on where
the source runs, and the private key stays out of the directories people publish.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

# cryptography is imported where a key is made, read or used, not with this module: a stored
# download imports the live description's type (to tell a live swarm's description apart) and
# should not pay for loading cryptography at start-up.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

from ppsp.errors import IntegrityError, InvalidDescription, LiveError

__all__ = [
    "DNSSEC_ALGORITHM_ED25519",
    "LIVE_FORMAT",
    "MAX_CHUNK_MS",
    "MAX_LIVE_DESCRIPTION_BYTES",
    "MAX_WINDOW_S",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "LiveDescription",
    "create_key",
    "data_home",
    "default_key_path",
    "generate_key",
    "is_live_description",
    "key_file_name",
    "live_swarm_id",
    "load_key",
    "prepare_key_directory",
    "public_key_bytes",
    "save_key",
    "verify_live_description",
]

LIVE_FORMAT: Final = "ppsp-live/1"
"""The ``format`` field of a live description."""

ALGORITHM: Final = "ed25519"
"""The ``algorithm`` field: the source's signature scheme."""

DNSSEC_ALGORITHM_ED25519: Final = 15
"""DNSSEC algorithm number of Ed25519 (RFC 8080), the first byte of the hashed key."""

PUBLIC_KEY_SIZE: Final = 32
"""Size of a raw Ed25519 public key."""

SIGNATURE_SIZE: Final = 64
"""Size of an Ed25519 signature."""

MAX_CHUNK_MS: Final = 60_000
"""Longest chunk duration a description may declare, in milliseconds."""

MAX_WINDOW_S: Final = 86_400
"""Longest live window a description may declare, in seconds."""

MAX_START_MS: Final = (1 << 53) - 1
"""Largest ``start_ms`` (exactly representable in every JSON implementation)."""

MAX_NAME_LENGTH: Final = 1024
"""Longest stream name, in characters."""

MAX_LIVE_DESCRIPTION_BYTES: Final = 8192
"""Largest canonical live description accepted."""

MAX_KEY_FILE_BYTES: Final = 64 * 1024
"""Largest key file :func:`load_key` reads."""

_SWARM_DOMAIN: Final = b"ppsp-live/1\x00"
_DESCRIPTION_DOMAIN: Final = b"ppsp-live-description/1\x00"
_KEYS: Final = frozenset(
    {
        "algorithm",
        "chunk_ms",
        "format",
        "media_type",
        "name",
        "public_key",
        "signature",
        "start_ms",
        "window_s",
    }
)
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,63}/[A-Za-z0-9!#$&^_.+-]{1,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX_SWARM_ID = re.compile(r"[0-9a-f]{64}")


def _is_int(value: object) -> bool:
    return type(value) is int


def generate_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key for a live source."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _pem(key: Ed25519PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key of ``key`` (a private key gives its public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def save_key(path: str | os.PathLike[str], key: Ed25519PrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM to ``path``, readable by its owner only (0600).

    An existing file is overwritten and its mode reset to 0600 before the key is written.
    """
    pem = _pem(key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)


def create_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Make a new key and save it to ``path`` (mode 0600), which must not exist yet.

    Raises FileExistsError when it does (say, another source made it a moment ago), so that a
    key is never overwritten.
    """
    key = generate_key()
    pem = _pem(key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    return key


KEY_DIRECTORY: Final = Path("ppsp") / "live-keys"
"""Where, in the user's data directory, live sources keep their keys."""

_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def data_home(environ: Mapping[str, str] | None = None) -> Path:
    """The user's data directory: ``$XDG_DATA_HOME`` if absolute, else ``~/.local/share``."""
    env = os.environ if environ is None else environ
    configured = env.get("XDG_DATA_HOME", "")
    if configured and os.path.isabs(configured):
        return Path(configured)
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "share"


def key_file_name(name: str) -> str:
    """The key file of the stream called ``name``: ``NAME.key`` when the name is a plain file
    name (letters, digits, ``.``, ``_``, ``-``, at most 64, not starting with a dot or dash),
    else its plain characters and a hash of the whole name, so distinct names never share."""
    if _SAFE_FILE_NAME.fullmatch(name):
        return f"{name}.key"
    plain = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:48] or "stream"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{plain}-{digest}.key"


def default_key_path(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where the source of the stream called ``name`` keeps its key (module docstring)."""
    return data_home(environ) / KEY_DIRECTORY / key_file_name(name)


def prepare_key_directory(path: Path) -> None:
    """Make the directory of key file ``path`` (and ``ppsp/`` above it) with mode 0700 where
    missing, and set the key directory itself to 0700."""
    directory = path.parent
    for missing in reversed([directory, *directory.parents]):
        if not missing.exists():
            missing.mkdir(mode=0o700, exist_ok=True)
    if directory.stat().st_mode & 0o777 != 0o700:
        directory.chmod(0o700)


def load_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an Ed25519 private key saved by :func:`save_key` (unencrypted PEM).

    Raises :class:`~ppsp.errors.LiveError` when the file is too large, not PEM, encrypted or
    holds another kind of key; OSError when it cannot be read.
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise LiveError(f"{path}: key file over {MAX_KEY_FILE_BYTES} bytes")
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise LiveError(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LiveError(f"{path}: not an Ed25519 private key")
    return key


def live_swarm_id(public_key: bytes | Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The live swarm ID of a source key (see the module docstring): 64 lower-case hex digits."""
    raw = public_key if isinstance(public_key, bytes) else public_key_bytes(public_key)
    if len(raw) != PUBLIC_KEY_SIZE:
        raise LiveError(f"an Ed25519 public key has {PUBLIC_KEY_SIZE} bytes, not {len(raw)}")
    digest = hashlib.sha256(_SWARM_DOMAIN + bytes([DNSSEC_ALGORITHM_ED25519]) + raw)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveDescription:
    """The signed description of a live stream; its swarm ID comes from ``public_key``.

    Build one with :meth:`create` (the source, which holds the key) or :meth:`from_bytes` /
    :func:`verify_live_description` (a viewer).  The constructor checks every field and the
    signature and raises :class:`~ppsp.errors.InvalidDescription` for bad fields and
    :class:`~ppsp.errors.IntegrityError` for a bad signature.
    """

    public_key: bytes
    """The source's raw 32-byte Ed25519 public key."""
    name: str
    """Human-readable name, 1-1024 characters, no control characters."""
    media_type: str
    """MIME type of the stream, ``type/subtype`` (``video/mp2t`` for MPEG-TS)."""
    chunk_ms: int
    """Nominal duration of one chunk in milliseconds, 1 to :data:`MAX_CHUNK_MS`."""
    window_s: int
    """Live window: how many seconds of chunks peers keep and serve, 1 to :data:`MAX_WINDOW_S`."""
    start_ms: int
    """The source's start reference: Unix time in milliseconds when the stream started."""
    signature: bytes
    """The source's Ed25519 signature over the description (module docstring)."""
    _verifier: Ed25519PublicKey = field(init=False, repr=False, compare=False)
    _canonical: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_SIZE:
            raise InvalidDescription("public_key must be 32 raw bytes")
        if (
            not isinstance(self.name, str)
            or not 1 <= len(self.name) <= MAX_NAME_LENGTH
            or _CONTROL.search(self.name)
        ):
            raise InvalidDescription("invalid stream name")
        if not isinstance(self.media_type, str) or not _MEDIA_TYPE.fullmatch(self.media_type):
            raise InvalidDescription(f"invalid media type {self.media_type!r}")
        if not _is_int(self.chunk_ms) or not 1 <= self.chunk_ms <= MAX_CHUNK_MS:
            raise InvalidDescription(f"chunk_ms must be an int in [1, {MAX_CHUNK_MS}]")
        if not _is_int(self.window_s) or not 1 <= self.window_s <= MAX_WINDOW_S:
            raise InvalidDescription(f"window_s must be an int in [1, {MAX_WINDOW_S}]")
        if not _is_int(self.start_ms) or not 0 <= self.start_ms <= MAX_START_MS:
            raise InvalidDescription("start_ms must be a non-negative int")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise InvalidDescription(f"signature must be {SIGNATURE_SIZE} bytes")
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            verifier = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise InvalidDescription(f"invalid public key: {exc}") from None
        try:
            verifier.verify(self.signature, _DESCRIPTION_DOMAIN + self._unsigned_bytes())
        except InvalidSignature:
            raise IntegrityError("live description signature does not verify") from None
        object.__setattr__(self, "_verifier", verifier)
        object.__setattr__(self, "_canonical", self._encode(with_signature=True))

    @classmethod
    def create(
        cls,
        key: Ed25519PrivateKey,
        *,
        name: str,
        media_type: str,
        chunk_ms: int,
        window_s: int,
        start_ms: int,
    ) -> LiveDescription:
        """Describe and sign a new live stream (the source's side)."""
        fields: dict[str, Any] = {
            "public_key": public_key_bytes(key),
            "name": name,
            "media_type": media_type,
            "chunk_ms": chunk_ms,
            "window_s": window_s,
            "start_ms": start_ms,
        }
        try:
            unsigned = orjson.dumps(_document(fields), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as exc:
            raise InvalidDescription(f"description cannot be encoded: {exc}") from None
        signature = key.sign(_DESCRIPTION_DOMAIN + unsigned)
        return cls(signature=signature, **fields)

    def _fields(self) -> dict[str, Any]:
        return {
            "public_key": self.public_key,
            "name": self.name,
            "media_type": self.media_type,
            "chunk_ms": self.chunk_ms,
            "window_s": self.window_s,
            "start_ms": self.start_ms,
        }

    def _unsigned_bytes(self) -> bytes:
        return self._encode(with_signature=False)

    def _encode(self, *, with_signature: bool) -> bytes:
        document = _document(self._fields())
        if with_signature:
            document["signature"] = self.signature.hex()
        try:
            return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate in the name
            raise InvalidDescription(f"description cannot be encoded: {exc}") from None

    def to_bytes(self) -> bytes:
        """The canonical encoding (compact JSON, sorted keys, signature included)."""
        return self._canonical

    @property
    def swarm_id(self) -> str:
        """The live swarm ID, derived from :attr:`public_key` (:func:`live_swarm_id`)."""
        return live_swarm_id(self.public_key)

    @property
    def verifier(self) -> Ed25519PublicKey:
        """The public key object that verifies this stream's chunk signatures."""
        return self._verifier

    @property
    def chunk_duration(self) -> float:
        """Nominal duration of one chunk, in seconds."""
        return self.chunk_ms / 1000

    @property
    def window_chunks(self) -> int:
        """How many chunks of nominal duration the live window spans (at least 1)."""
        return max(1, -(-self.window_s * 1000 // self.chunk_ms))

    @classmethod
    def from_bytes(cls, data: bytes) -> LiveDescription:
        """Decode and check a canonical live description from an untrusted source.

        Raises :class:`~ppsp.errors.InvalidDescription` for anything malformed, out of bounds or
        not in canonical form, :class:`~ppsp.errors.IntegrityError` for a bad signature.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidDescription("description must be bytes")
        data = bytes(data)
        if len(data) > MAX_LIVE_DESCRIPTION_BYTES:
            raise InvalidDescription(f"live description over {MAX_LIVE_DESCRIPTION_BYTES} bytes")
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidDescription(f"description is not valid JSON: {exc}") from None
        if not isinstance(document, dict) or set(document) != _KEYS:
            raise InvalidDescription(f"a live description has exactly the fields {sorted(_KEYS)}")
        if document["format"] != LIVE_FORMAT:
            raise InvalidDescription(f"unsupported description format {document['format']!r}")
        if document["algorithm"] != ALGORITHM:
            raise InvalidDescription(f"unsupported algorithm {document['algorithm']!r}")
        description = cls(
            public_key=_hex_field(document["public_key"], PUBLIC_KEY_SIZE, "public_key"),
            signature=_hex_field(document["signature"], SIGNATURE_SIZE, "signature"),
            name=document["name"],
            media_type=document["media_type"],
            chunk_ms=document["chunk_ms"],
            window_s=document["window_s"],
            start_ms=document["start_ms"],
        )
        if description.to_bytes() != data:
            raise InvalidDescription("live description is not in canonical form")
        return description


def _document(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "algorithm": ALGORITHM,
        "chunk_ms": fields["chunk_ms"],
        "format": LIVE_FORMAT,
        "media_type": fields["media_type"],
        "name": fields["name"],
        "public_key": fields["public_key"].hex(),
        "start_ms": fields["start_ms"],
        "window_s": fields["window_s"],
    }


def _hex_field(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or value != value.lower():
        raise InvalidDescription(f"{what} must be {2 * size} lower-case hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidDescription(f"{what} must be {2 * size} lower-case hex digits") from None


def is_live_description(data: bytes) -> bool:
    """Whether ``data`` looks like a live description (a JSON object of format ``ppsp-live/1``).

    A cheap sniff, to choose between :func:`verify_live_description` and the stored-content
    check; it proves nothing about the description's validity.
    """
    if not isinstance(data, bytes) or len(data) > MAX_LIVE_DESCRIPTION_BYTES:
        return False
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.get("format") == LIVE_FORMAT


def verify_live_description(data: bytes, swarm_id: str) -> LiveDescription:
    """Decode a live description fetched from an untrusted peer and check it against ``swarm_id``.

    Raises :class:`~ppsp.errors.IntegrityError` when the description's key does not hash to the
    swarm ID or its signature is bad, :class:`~ppsp.errors.InvalidDescription` when the ID is
    malformed or the bytes are invalid.
    """
    if not isinstance(swarm_id, str) or not _HEX_SWARM_ID.fullmatch(swarm_id):
        raise InvalidDescription(f"malformed swarm ID {swarm_id!r}")
    description = LiveDescription.from_bytes(data)
    if not hmac.compare_digest(description.swarm_id, swarm_id):
        raise IntegrityError("live description's public key does not match the swarm ID")
    return description
