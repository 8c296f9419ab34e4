"""Tracker benchmark: what TLS and bearer tokens cost, against plain HTTP, in the same run.

    python -m bench.tracker_trust_bench [--peers N] [--duration S] [--rounds R] [--out FILE]

Four trackers run side by side, each started the way a user starts one
(``python -m ppsp tracker --limits off ...``, uvloop, one process, memory storage):

- ``plain``: HTTP;
- ``tls``: HTTPS (``--tls-cert``/``--tls-key``), with a certificate for 127.0.0.1 issued by a
  CA the benchmark makes with ``cryptography`` in a temporary directory; the load generator
  trusts that CA (and nothing else) and verifies the certificate as a peer does;
- ``tokens``: HTTP with ``--auth-key``: every request carries
  ``Authorization: Bearer <token>``, its peer's token from
  :func:`ppsp.tracker.net.auth.issue_token` (one per simulated peer, made before the clock starts);
- ``tls_tokens``: both.

The workload and the driver are ``bench.tracker_bench``'s: ``--peers`` peers register and join
one of ``peers / 20`` swarms (setup), then the mixed load (40 % STAT_REPORT with a content map,
40 % FIND, 20 % churn: a fresh peer's CONNECT, JOIN, DISCONNECT) from ``--concurrency``
simulated peers in flight, bodies encoded beforehand.  Connections are kept alive (aiohttp's
pool, ``--concurrency`` connections per server), so a TLS handshake is made once per
connection, not once per request: the figure is TLS's cost on a kept-alive connection.

1. Setup of every server, then ``--warmup`` seconds of the mixed load against each.
2. ``--rounds`` rounds: each runs the load against the four servers, ``--duration / --rounds``
   seconds each, in the order plain, tls, tokens, tls_tokens in even rounds and the reverse in
   odd ones (every server's mean position is the same).  Each round gives paired ratios:
   req/s of each server over plain's, measured seconds apart under the same machine load; the
   reported ratio is the median of the rounds'.

Reported per server: req/s, the server process's CPU per request (user + system, from
/proc), latency percentiles and the client's CPU (the load generator shares the machine).
Targets (issue 12): TLS with keep-alive >= 80 % of plain, token checking >= 90 %.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench.tracker_bench import (
    Driver,
    PhaseResult,
    Workload,
    _loop_factory,
    _start,
    _stop,
    build_workload,
    merge,
    run_mixed,
    run_setup,
    tracker_args,
)
from ppsp.tracker.net.auth import generate_key_pair, issue_token, public_key_pem
from ppsp.wire.tracker import Encoding

SERVERS = ("plain", "tls", "tokens", "tls_tokens")
"""The four trackers, in the order of even rounds."""

TARGETS = {"tls": 0.80, "tokens": 0.90}
"""Least throughput over plain's that issue 12 asks for."""

TOKEN_TTL = 24 * 3600.0
"""Lifetime of the benchmark's tokens (longer than any run)."""


# -- certificates and keys -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """PEM files: the CA certificate a client trusts, the server's certificate and its key."""

    ca: Path
    cert: Path
    key: Path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_tls_files(directory: Path, host: str = "127.0.0.1") -> TLSFiles:
    """A fresh CA and the certificate it issues to a server at ``host`` (P-256 keys), as PEM
    files in ``directory``.

    The server certificate carries what strict verifiers ask for (subject alternative name,
    key identifiers, key usage, serverAuth), as a real deployment's would.
    """
    now = datetime.datetime.now(datetime.UTC)
    valid_from, valid_to = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ppsp benchmark CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TLSFiles(directory / "ca.crt", directory / "tracker.crt", directory / "tracker.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(_pem_key(key))
    files.key.chmod(0o600)
    return files


def token_headers(
    work: Workload, peers: int, encoding: Encoding, private_key: Any
) -> dict[bytes, dict[str, str]]:
    """The headers of every body of the workload: its peer's bearer token.

    The peers are ``build_workload``'s: ``bench{i:07d}`` sends the setup pair, the report and
    the FIND of index ``i``; ``churn{w:05d}`` the churn triple of worker ``w`` (checked: each
    body names its peer).
    """
    now = time.time()
    by_body: dict[bytes, dict[str, str]] = {}

    def add(peer_id: str, bodies: Sequence[bytes]) -> None:
        token = issue_token(private_key, peer_id, ttl=TOKEN_TTL, now=now)
        headers = {"Content-Type": encoding.content_type, "Authorization": f"Bearer {token}"}
        for body in bodies:
            if peer_id.encode() not in body:
                raise RuntimeError(f"a body of {peer_id} does not name it: {body[:200]!r}")
            by_body[body] = headers

    for i in range(peers):
        add(f"bench{i:07d}", [*work.setup[i], work.reports[i], work.finds[i]])
    for w, triple in enumerate(work.churn):
        add(f"churn{w:05d}", triple)
    return by_body


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Server:
    """One benchmarked tracker: its name, process, base URL and load driver."""

    name: str
    process: subprocess.Popen[str]
    url: str
    driver: Driver | None = None


def _rps(result: PhaseResult) -> float:
    return result.requests / result.wall if result.wall else 0.0


def _cpu_us(result: PhaseResult) -> float:
    return result.server_cpu / result.requests * 1e6 if result.requests else float("nan")


async def run_rounds(
    servers: dict[str, Server],
    work: Workload,
    args: argparse.Namespace,
    client_tls: ssl.SSLContext,
    headers_by_body: dict[bytes, dict[str, str]],
) -> dict[str, Any]:
    """Setup and warm-up of every server, then the paired rounds."""
    encoding = Encoding(args.encoding)
    sessions: list[aiohttp.ClientSession] = []
    try:
        for server in servers.values():
            tls = server.name.startswith("tls")
            connector = aiohttp.TCPConnector(
                limit=args.concurrency,
                limit_per_host=args.concurrency,
                ssl=client_tls if tls else True,
            )
            session = aiohttp.ClientSession(connector=connector)
            sessions.append(session)
            by_body = headers_by_body if server.name.endswith("tokens") else None
            server.driver = Driver(server.url, session, encoding, headers_by_body=by_body)
        out: dict[str, Any] = {name: {"url": server.url} for name, server in servers.items()}
        for server in servers.values():
            assert server.driver is not None
            setup = await run_setup(server.driver, work, args.concurrency, server.process.pid)
            out[server.name]["setup"] = setup.summary()
        if args.warmup > 0:
            for server in servers.values():
                assert server.driver is not None
                warm = await run_mixed(
                    server.driver,
                    work,
                    args.concurrency,
                    args.warmup,
                    args.max_requests,
                    server.process.pid,
                )
                out[server.name]["warmup"] = warm.summary()
        round_seconds = args.duration / args.rounds
        phases: dict[str, list[PhaseResult]] = {name: [] for name in servers}
        rounds: list[dict[str, Any]] = []
        for index in range(args.rounds):
            order = list(servers) if index % 2 == 0 else list(reversed(servers))
            got: dict[str, PhaseResult] = {}
            for name in order:
                server = servers[name]
                assert server.driver is not None
                got[name] = await run_mixed(
                    server.driver,
                    work,
                    args.concurrency,
                    round_seconds,
                    args.max_requests,
                    server.process.pid,
                    seed=3 + index,
                )
                phases[name].append(got[name])
            plain = got["plain"]
            rounds.append(
                {
                    "round": index + 1,
                    "order": order,
                    "rps": {name: round(_rps(result), 1) for name, result in got.items()},
                    "server_cpu_us_per_request": {
                        name: round(_cpu_us(result), 1) for name, result in got.items()
                    },
                    "throughput_over_plain": {
                        name: round(_rps(result) / _rps(plain), 3)
                        for name, result in got.items()
                        if name != "plain" and _rps(plain)
                    },
                    "cpu_per_request_over_plain": {
                        name: round(_cpu_us(result) / _cpu_us(plain), 3)
                        for name, result in got.items()
                        if name != "plain"
                    },
                    "errors": {name: result.errors for name, result in got.items()},
                }
            )
        for name, results in phases.items():
            out[name]["mixed"] = merge(results).summary()
        return {"servers": out, "rounds": rounds}
    finally:
        for session in sessions:
            await session.close()


def _ratios(rounds: list[dict[str, Any]], key: str, name: str) -> dict[str, Any]:
    values = [r[key][name] for r in rounds if name in r[key]]
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3) if ordered else None,
        "min": ordered[0] if ordered else None,
        "max": ordered[-1] if ordered else None,
        "per_round": values,
    }


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The paired ratios against plain (medians of the rounds) and the targets."""
    rounds = report["rounds"]
    ratios: dict[str, Any] = {}
    for name in SERVERS[1:]:
        ratios[name] = {
            "throughput_over_plain": _ratios(rounds, "throughput_over_plain", name),
            "server_cpu_per_request_over_plain": _ratios(
                rounds, "cpu_per_request_over_plain", name
            ),
        }
    targets = {
        name: {
            "target_at_least": target,
            "measured": ratios[name]["throughput_over_plain"]["median"],
            "met": (ratios[name]["throughput_over_plain"]["median"] or 0.0) >= target,
        }
        for name, target in TARGETS.items()
    }
    table = {}
    for name in SERVERS:
        mixed = report["servers"][name]["mixed"]
        table[name] = {
            "requests_per_second": mixed["requests_per_second"],
            "server_cpu_us_per_request": mixed["server_cpu_us_per_request"],
            "latency_ms_p50": mixed["latency_ms"]["p50"],
            "latency_ms_p99": mixed["latency_ms"]["p99"],
            "client_cpu_seconds": mixed["client_cpu_seconds"],
            "errors": mixed["errors"] + report["servers"][name]["setup"]["errors"],
        }
    return {
        "ratios": ratios,
        "targets": targets,
        "summary": table,
        "method": "median over rounds of each server's req/s / plain's req/s, the four measured "
        "back to back in alternating order",
    }


def _commit() -> dict[str, Any]:
    """The checkout's commit and whether it had changes not committed."""
    import ppsp

    where = str(Path(ppsp.__file__).resolve().parent)

    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", where, *argv], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "ppsp": where,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the figures as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracker_trust_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--peers", type=int, default=5000, help="simulated peers (setup phase)")
    parser.add_argument(
        "--duration", type=float, default=16.0, help="seconds of mixed load per server, all rounds"
    )
    parser.add_argument("--rounds", type=int, default=8, help="rounds over the four servers")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument(
        "--max-requests", type=int, default=1_000_000, help="cap on mixed requests per phase"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--encoding", choices=["xml", "json"], default="xml")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    encoding = Encoding(args.encoding)
    work = build_workload(args.peers, args.concurrency, encoding)
    private_key, public_key = generate_key_pair()
    headers_by_body = token_headers(work, args.peers, encoding, private_key)
    report: dict[str, Any] = {
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.tracker_trust_bench", *(argv or sys.argv[1:])]
        ),
        **_commit(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "workload": {
            "peers": args.peers,
            "swarms": max(1, args.peers // 20),
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "round_s": args.duration / args.rounds,
            "warmup_s": args.warmup,
            "encoding": args.encoding,
            "mix": "40% STAT_REPORT (256-chunk content map), 40% FIND, 20% churn "
            "(CONNECT + JOIN + DISCONNECT of a fresh peer)",
            "connections": "kept alive, one pool of --concurrency per server",
            "tls": "TLS 1.2+ as the tracker serves it; the client trusts the benchmark's CA only",
            "tokens": "Ed25519 JWTs, one per simulated peer, issued before the clock starts",
        },
    }

    with tempfile.TemporaryDirectory(prefix="ppsp-trust-bench-") as temporary:
        directory = Path(temporary)
        files = make_tls_files(directory)
        auth_key = directory / "auth.pub.pem"
        auth_key.write_bytes(public_key_pem(public_key))
        client_tls = ssl.create_default_context(cafile=str(files.ca))
        tls = ["--tls-cert", str(files.cert), "--tls-key", str(files.key)]
        tokens = ["--auth-key", str(auth_key)]
        options = {"plain": [], "tls": tls, "tokens": tokens, "tls_tokens": [*tls, *tokens]}
        servers: dict[str, Server] = {}
        try:
            for name in SERVERS:
                process, url = _start([*tracker_args(), *options[name]])
                servers[name] = Server(name, process, url)
            report["tracker_options"] = {
                name: " ".join(["--limits off", *options[name]]).replace(temporary, "$TMP")
                for name in SERVERS
            }
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                report.update(
                    runner.run(run_rounds(servers, work, args, client_tls, headers_by_body))
                )
        finally:
            for server in servers.values():
                _stop(server.process)

    report.update(summarize(report))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    errors = sum(row["errors"] for row in report["summary"].values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
