"""Trust between peers and tracker with real processes: TLS, bearer tokens, private swarms.

The tracker listens on 127.0.0.1 with a certificate issued by a test CA; each peer runs on a
loopback address of its own (127.0.0.2, 127.0.0.3, ...), so that the tracker sees distinct
hosts, as on the internet.  Keys and tokens are made with ``ppsp keygen`` and ``ppsp token``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from e2e.cli_runner import run_lines
from e2e.swarm_helpers import CHUNK_SIZE, Peer, Swarm, content, finish, run_ppsp
from e2e.tls_helpers import TLSFiles, make_tls_files
from ppsp.errors import PPSPError
from ppsp.http.client import HttpClient
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.net.client import TrackerClient

pytestmark = pytest.mark.e2e

LISTENING = re.compile(r"listening on (https?://\S+)")
SWARM_B = "cd" * 32
"""A swarm no token in these tests lets its holder join."""


@dataclass(frozen=True, slots=True)
class Keys:
    """The tracker's signing key pair, as ``ppsp keygen`` wrote it."""

    private: Path
    public: Path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trust")


@pytest.fixture(scope="module")
def tls(workdir: Path) -> TLSFiles:
    return make_tls_files(workdir / "tls", hosts=("127.0.0.1",))


@pytest.fixture(scope="module")
def keys(workdir: Path) -> Keys:
    result = run_ppsp("keygen", "--out", str(workdir / "auth"), cwd=workdir)
    assert result.returncode == 0, result.stderr
    keys = Keys(private=workdir / "auth-private.pem", public=workdir / "auth-public.pem")
    assert str(keys.private) in result.stdout and str(keys.public) in result.stdout
    assert keys.private.stat().st_mode & 0o777 == 0o600
    return keys


def token(keys: Keys, peer_id: str, *swarms: str, ttl: int | None = None) -> str:
    """A token from ``ppsp token`` for ``peer_id`` (limited to ``swarms`` when given)."""
    args = ["token", "--key", str(keys.private), "--peer-id", peer_id]
    for swarm in swarms:
        args += ["--swarm", swarm]
    if ttl is not None:
        args += ["--ttl", str(ttl)]
    result = run_ppsp(*args, cwd=keys.private.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return lines[0]


async def tls_tracker(swarm: Swarm, tls: TLSFiles, *args: str) -> Peer:
    """Start ``ppsp tracker`` with TLS on 127.0.0.1 (per-host limits on); remember its URL."""
    proc = await swarm.spawn(
        "tracker", "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning",
        "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), *args,
    )  # fmt: skip
    match = await proc.wait_line(LISTENING, stream="stdout")
    assert match.group(1).startswith("https://127.0.0.1:"), proc.output()
    swarm.tracker_url = match.group(1)
    return proc


def one_line_failure(peer: Peer) -> str:
    """The single error line of a peer command that failed (exit status 1, no traceback)."""
    lines = [line for line in peer.stderr if line.startswith("ppsp: ")]
    assert peer.process.returncode == 1, peer.output()
    assert len(lines) == 1, peer.output()
    assert not any("Traceback" in line for line in peer.stderr), peer.output()
    return lines[0]


def test_token_and_keygen_make_what_the_standards_say(keys: Keys) -> None:
    text = token(keys, "peer-7", "a" * 64, "b" * 64, ttl=600)
    public = serialization.load_pem_public_key(keys.public.read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    claims = jwt.decode(text, public, algorithms=["EdDSA"])
    assert claims["sub"] == "peer-7"
    assert claims["swarms"] == ["a" * 64, "b" * 64]
    assert abs(claims["exp"] - (time.time() + 600)) < 60
    assert jwt.get_unverified_header(text)["alg"] == "EdDSA"
    assert "swarms" not in jwt.decode(token(keys, "p"), public, algorithms=["EdDSA"])
    # The private key is an ordinary PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes.
    private = serialization.load_pem_private_key(keys.private.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    assert keys.private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert keys.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_token_takes_an_openssl_key(tmp_path: Path) -> None:
    """A key pair that OpenSSL made (or the same PEM forms, where no openssl is installed)."""
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    if shutil.which("openssl") is not None:
        command = ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)]
        subprocess.run(command, capture_output=True, check=True)
    else:
        key = Ed25519PrivateKey.generate()
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    public.write_bytes(
        loaded.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    text = token(Keys(private=private, public=public), "peer-1")
    assert jwt.decode(text, loaded.public_key(), algorithms=["EdDSA"])["sub"] == "peer-1"


@pytest.mark.parametrize(
    ("max_version", "encoding"), [("1.1", "xml"), ("1.0", "json")], ids=["1.1-xml", "1.0-json"]
)
async def test_seed_and_get_through_tls_with_tokens(
    tmp_path: Path, tls: TLSFiles, keys: Keys, max_version: str, encoding: str
) -> None:
    """The whole path: TLS with a private CA, tokens from ppsp token, PeerIDs from the tokens;
    with --max-version 1.0, the peers' fallback from 1.1 goes through TLS and tokens too."""
    source = content(5 * CHUNK_SIZE + 123)
    (tmp_path / "movie.bin").write_bytes(source)
    seeder_token = token(keys, "seeder-1")
    async with Swarm(tmp_path, env={"PPSP_TOKEN": seeder_token}) as swarm:
        await tls_tracker(swarm, tls, "--auth-key", str(keys.public), "--max-version", max_version)
        # The seeder's token comes from $PPSP_TOKEN, out of its command line.
        _seeder, swarm_id = await swarm.seed(
            tmp_path / "movie.bin", "--host", "127.0.0.2", "--ca-file", str(tls.ca),
            "--report", str(tmp_path / "seeder.json"), encoding=encoding,
        )  # fmt: skip
        leecher_token = token(keys, "leecher-1", swarm_id)
        get = await swarm.get(
            swarm_id, tmp_path / "out.bin", "--host", "127.0.0.3", "--ca-file", str(tls.ca),
            "--token", leecher_token, "--report", str(tmp_path / "get.json"), encoding=encoding,
        )  # fmt: skip
        await finish(get)
        _seeder.signal(2)
        assert await _seeder.wait() == 0, _seeder.output()
    assert (tmp_path / "out.bin").read_bytes() == source
    get_report = orjson.loads((tmp_path / "get.json").read_bytes())
    assert get_report["peer_id"] == "leecher-1"  # the token's subject
    (session,) = get_report["sessions"]
    assert "seeder-1" in orjson.dumps(session).decode()  # fetched from the token's seeder
    assert orjson.loads((tmp_path / "seeder.json").read_bytes())["peer_id"] == "seeder-1"


async def test_untrusted_certificate_is_one_line(tmp_path: Path, tls: TLSFiles) -> None:
    async with Swarm(tmp_path) as swarm:
        await tls_tracker(swarm, tls)
        get = await swarm.get(SWARM_B, tmp_path / "out.bin", "--host", "127.0.0.2")
        assert await get.wait(20) == 1
    line = one_line_failure(get)
    where = swarm.tracker_url.removeprefix("https://").rstrip("/")
    assert f"tracker {where}: certificate verify failed: unable to get local issuer" in line
    assert "--ca-file" in line


async def test_a_peer_without_a_token_is_told_to_give_one(
    tmp_path: Path, tls: TLSFiles, keys: Keys
) -> None:
    expired = _expired_token(keys, "late-1")
    async with Swarm(tmp_path) as swarm:
        await tls_tracker(swarm, tls, "--auth-key", str(keys.public))
        where = swarm.tracker_url.removeprefix("https://").rstrip("/")
        common = ("--ca-file", str(tls.ca), "--timeout", "10")
        without = await swarm.get(SWARM_B, tmp_path / "a.bin", "--host", "127.0.0.2", *common)
        late = await swarm.get(
            SWARM_B, tmp_path / "b.bin", "--host", "127.0.0.3", "--token", expired, *common
        )
        assert await without.wait(20) == 1 and await late.wait(20) == 1
    assert one_line_failure(without) == (
        f"ppsp: tracker {where} requires a token: give --token or set PPSP_TOKEN"
    )
    assert one_line_failure(late).startswith(f"ppsp: tracker {where} refused the token: ")
    assert "expired" in one_line_failure(late).lower()


def _expired_token(keys: Keys, subject: str) -> str:
    private = serialization.load_pem_private_key(keys.private.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    now = int(time.time())
    claims = {"sub": subject, "iat": now - 7200, "exp": now - 3600}
    return jwt.encode(claims, private, algorithm="EdDSA")


async def test_a_token_for_one_swarm_cannot_join_another(
    tmp_path: Path, tls: TLSFiles, keys: Keys
) -> None:
    source = content(3 * CHUNK_SIZE)
    (tmp_path / "movie.bin").write_bytes(source)
    async with Swarm(tmp_path) as swarm:
        await tls_tracker(swarm, tls, "--auth-key", str(keys.public))
        _seeder, swarm_a = await swarm.seed(
            tmp_path / "movie.bin", "--host", "127.0.0.2", "--ca-file", str(tls.ca),
            "--token", token(keys, "seeder-2"),
        )  # fmt: skip
        only_a = token(keys, "viewer-2", swarm_a)
        common = ("--host", "127.0.0.3", "--ca-file", str(tls.ca), "--token", only_a)
        refused = await swarm.get(SWARM_B, tmp_path / "b.bin", *common, "--timeout", "10")
        assert await refused.wait(20) == 1
        line = one_line_failure(refused)
        allowed = await swarm.get(swarm_a, tmp_path / "a.bin", *common)
        await finish(allowed)
    assert line == f"ppsp: tracker refused JOIN: the token does not allow swarm {SWARM_B}"
    assert not (tmp_path / "b.bin").exists()
    assert (tmp_path / "a.bin").read_bytes() == source


def test_peer_trust_options_are_checked_before_any_network(tmp_path: Path, tls: TLSFiles) -> None:
    """Usage errors, exit status 2, one line: the tracker named here does not exist at all."""
    out = str(tmp_path / "o")
    cases = [
        (["--tracker", "http://127.0.0.1:9", "--ca-file", str(tls.ca)], {}, "https://"),
        (["--tracker", "https://127.0.0.1:9"], {"PPSP_TOKEN": "not-a-jwt"}, "$PPSP_TOKEN"),
        (["--tracker", "https://127.0.0.1:9", "--token", "a.b"], {}, "not a JWT"),
        (["--tracker", "https://127.0.0.1:9", "--ca-file", out], {}, "No such file"),
        (["--tracker", "https://127.0.0.1:9", "--ca-file", str(tls.key)], {}, "no usable PEM"),
    ]
    results = run_lines(
        [(["get", SWARM_B, "-o", out, *args], tmp_path, env) for args, env, _ in cases],
        env={**os.environ, "COLUMNS": "200"},
    )
    for (args, _, words), result in zip(cases, results, strict=True):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("ppsp: "), (args, result.stderr)
        assert words in lines[0], (args, lines[0])


@pytest.mark.parametrize("limits", ["on", "off"])
async def test_limits_off_lets_one_host_run_many_peers(tmp_path: Path, limits: str) -> None:
    """What labs and benchmarks need: 300 peers from one address, registered at full speed.

    With the per-host limits on (the default), the registrations bound or the request rate of
    one host refuse some of them; ``--limits off`` lets every one through.
    """
    peers = 300
    async with Swarm(tmp_path) as swarm:
        tracker = await swarm.tracker("--limits", limits)
        assert ("per-host limits off" in tracker.stdout[0]) is (limits == "off")
        async with HttpClient(limit=100, limit_per_host=100) as http:
            clients = [
                TrackerClient(swarm.tracker_url, f"p{i}", session=http, retries=0)
                for i in range(peers)
            ]
            outcomes = await asyncio.gather(
                *(client.register() for client in clients), return_exceptions=True
            )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, PPSPError) for o in refused), refused[:3]
    if limits == "off":
        assert refused == []
    else:
        assert len(refused) >= peers - DEFAULT_LIMITS.peers_per_host
