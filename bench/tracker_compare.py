"""The tracker beside opentracker, bittorrent-tracker and bare endpoints, on one harness.

    python -m bench.tracker_compare [--quick] [--only NAME ...] [--peers N] [--big-peers N]
                                    [--duration S] [--rounds R] [--out FILE]

Every server is started by this command on one core (``taskset -c 0``) and loaded by ``wrk`` on
the other (``taskset -c 1``), with the Lua scripts of ``bench/wrk``:

- ``ppsp-xml``, ``ppsp-json``: ``ppsp tracker --limits off --dashboard off`` (memory storage,
  timers out of the way), one process per encoding, under the mixed PPSP-TP load of
  ``ppsp_mixed.lua``: 40 % STAT_REPORT (256-chunk content map), 40 % FIND, 20 % churn (a
  fresh peer's CONNECT, JOIN, DISCONNECT), from peers and swarms drawn from the whole
  registered pool.  The bodies are encoded by ppsp's codecs into ``templates.lua`` with
  placeholders for the peer ID, swarm ID and port, which the script fills in.
- ``bare-aiohttp``, ``bare-ppsp-http``: a POST endpoint answering the empty success answer,
  on aiohttp (``bench.tracker_bench --serve-bare``) and on ppsp's own HTTP server
  (:mod:`ppsp.http.server`), under the same load: the framework's floor.
- ``opentracker`` (Debian package ``opentracker``) and ``bittorrent-tracker`` (WebTorrent's,
  npm; installed by this command into ``~/.cache/ppsp-bench`` when npm is there), under
  BitTorrent announces (``bt_mixed.lua``: 80 % periodic announces, 20 % churn of
  started/announce/stopped, ``compact=1&numwant=20``).  Each is skipped with a note when it
  cannot be had.

Phases, each bounded by ``--timeout``:

1. Registration: ``--peers`` peers register (PPSP: CONNECT + JOIN; BitTorrent: an announce
   with event=started), 20 per swarm, by ``*_setup.lua`` (one wrk run that stops on its last
   answer).  VmRSS of the server (``/proc/PID/status``) before and after gives the RSS per
   peer measured from outside.
2. ``--rounds`` rounds of ``--duration`` seconds per server, the order of the servers rotated
   each round.  Per round: requests/s, server CPU per request (user + system ticks of
   ``/proc/PID/stat`` before and after, over wrk's completed requests), p50 and p99 latency
   (wrk's histogram).
3. p99 at 80 % of the saturating rate (the median requests/s of phase 2): with ``wrk2 -R``
   when it is installed; otherwise ``wrk`` with a Lua ``delay()`` (each connection waits an
   exponential time after each answer, Poisson-like arrivals), its mean calibrated by a pilot
   run so that the achieved rate is near the target.  The achieved rate is reported.
4. RSS per peer at ``--big-peers`` (1,000,000): a fresh process of each server of
   ``--big-servers`` registers that many peers with the same setup scripts.

The JSON report (every round, the git revision of the code measured) is written to ``--out``;
a markdown table with the issue's targets is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.tracker_bench import LISTENING, MAX_BODY, _content_map, _cpu_seconds, bare_body
from ppsp.codecs.tracker import codec_for
from ppsp.wire.tracker import (
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    TrackerResponse,
)

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = Path(__file__).resolve().parent / "wrk"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ppsp-bench"
NODE_PACKAGE = CACHE / "node_modules" / "bittorrent-tracker" / "package.json"
V11 = ProtocolVersion.V1_1
SERVER_CPU, CLIENT_CPU = "0", "1"
ALL_SERVERS = (
    "opentracker",
    "bittorrent-tracker",
    "bare-aiohttp",
    "bare-ppsp-http",
    "ppsp-xml",
    "ppsp-json",
)
TARGETS = {"cpu_us_per_request": 60.0, "rss_bytes_per_peer_at_1m": 300.0, "p99_ms_at_80": 10.0}
"""Issue 16's targets for the ppsp tracker on this harness."""

# Placeholders in the encoded templates, replaced by the Lua scripts (same widths).
PEER, PEER_FORMAT, CHURN_FORMAT = "P@@@@@@@@@", "p%09d", "c%09d"
SWARM, SWARM_FORMAT = "S@@@@@@@", "s%07d"
PORT = "11111"
CHURN_RING = 500
"""Churn peers per wrk thread; a peer's next step comes ring / 0.2 requests later."""
PEERS_PER_SWARM = 20


# -- templates ----------------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    assert "]==]" not in text
    return "[==[" + text + "]==]"


def templates_lua(encoding: Encoding, variants: int = 16) -> str:
    """The Lua table of request templates for ``ppsp_*.lua``, encoded by ppsp's codec."""
    codec = codec_for(encoding)
    rng = random.Random(1)
    address = (PeerAddress(ip="127.0.0.1", port=int(PORT), peer_protocol="PPSP-PP/0.1"),)

    def enc(message: Any, *needles: str) -> str:
        text = codec.encode_request(message).decode()
        for needle in needles:
            # Each placeholder exactly once: the Lua side replaces every occurrence.
            assert text.count(needle) == 1, (needle, text)
        return text

    def join(mode: PeerMode) -> str:
        swarms = (SwarmAction(swarm_id=SWARM, peer_mode=mode),)
        request = JoinRequest(version=V11, transaction_id="2", peer_id=PEER, swarms=swarms)
        return enc(request, PEER, SWARM)

    connect = enc(
        ConnectRequest(version=V11, transaction_id="1", peer_id=PEER, peer_addresses=address),
        PEER,
        PORT,
    )
    reports = [
        enc(
            StatReportRequest(
                version=V11,
                transaction_id="3",
                peer_id=PEER,
                stream_stats=(
                    StreamStatistics(
                        swarm_id=SWARM,
                        uploaded_bytes=rng.randrange(1 << 30),
                        downloaded_bytes=rng.randrange(1 << 30),
                        available_bandwidth=1_000_000,
                    ),
                ),
                content_maps=(_content_map(SWARM, rng),),
            ),
            PEER,
        )
        for _ in range(variants)
    ]
    find = enc(FindRequest(version=V11, transaction_id="4", peer_id=PEER, swarm_id=SWARM), PEER)
    leave = enc(
        DisconnectRequest(
            version=V11, transaction_id="5", peer_id=PEER, scope=DisconnectScope.SYSTEM
        ),
        PEER,
    )
    fields = {
        "content_type": repr(encoding.content_type).replace("'", '"'),
        "peer": f'"{PEER}"',
        "peer_format": f'"{PEER_FORMAT}"',
        "churn_format": f'"{CHURN_FORMAT}"',
        "swarm": f'"{SWARM}"',
        "swarm_format": f'"{SWARM_FORMAT}"',
        "port": f'"{PORT}"',
        "connect": _lua_string(connect),
        "join_seed": _lua_string(join(PeerMode.SEED)),
        "join_leech": _lua_string(join(PeerMode.LEECH)),
        "find": _lua_string(find),
        "reports": "{" + ", ".join(_lua_string(r) for r in reports) + "}",
        "churn": "{"
        + ", ".join(_lua_string(t) for t in (connect, join(PeerMode.LEECH), leave))
        + "}",
    }
    body = ",\n".join(f"  {name} = {value}" for name, value in fields.items())
    return f"-- generated by bench.tracker_compare ({encoding.value})\nreturn {{\n{body}\n}}\n"


# -- servers ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if (os.cpu_count() or 1) > 1 and shutil.which("taskset") else []


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Server:
    """One running server under test."""

    name: str
    protocol: str  # "ppsp" or "bittorrent"
    encoding: Encoding | None
    proc: subprocess.Popen[bytes]
    url: str
    registered: bool  # whether it keeps peers (RSS per peer is meaningful)
    started: str = field(default_factory=lambda: time.strftime("%H:%M:%SZ", time.gmtime()))
    """When it started: the code measured is the working tree of that moment."""

    @property
    def pid(self) -> int:
        """The server's process id (taskset execs it: the pid is the server's own)."""
        return self.proc.pid

    def stop(self) -> None:
        """Terminate it and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Skip(Exception):
    """A server that cannot run here; its message is the note in the report."""


NODE_LAUNCHER = """\
// Written by bench.tracker_compare: bittorrent-tracker's Server, HTTP only.  (Its own command
// imports the client too, whose WebRTC module is native code not built here.)
import Server from 'bittorrent-tracker/server'
const port = Number(process.argv[2])
const server = new Server({ http: true, udp: false, ws: false, stats: false })
server.on('error', (err) => { console.error(err.message); process.exit(1) })
server.on('warning', () => {})
server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`))
"""


def ensure_node_tracker(timeout: float) -> Path:
    """A launcher of bittorrent-tracker's HTTP server, the package installed into the cache
    directory with npm if needed.

    ``--ignore-scripts``: its optional WebRTC module (for the WebSocket tracker's clients)
    builds native code from sources downloaded at install time; the HTTP tracker needs none.
    """
    if shutil.which("node") is None:
        raise Skip("node not installed")
    if not NODE_PACKAGE.exists():
        if shutil.which("npm") is None:
            raise Skip("npm not installed")
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "bittorrent-tracker"],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0 or not NODE_PACKAGE.exists():
            raise Skip(f"npm install bittorrent-tracker failed: {done.stderr.strip()[-200:]}")
    launcher = CACHE / "serve-http.mjs"
    if not launcher.exists() or launcher.read_text() != NODE_LAUNCHER:
        launcher.write_text(NODE_LAUNCHER)
    return launcher


def _wait_port(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Skip(f"exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise Skip(f"not listening on {port} within {timeout} s")


def _wait_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            match = LISTENING.search(raw.decode(errors="replace"))
            if match and not found:
                found.append(match.group(1))
        # keep draining until exit, so that a full pipe never blocks the server

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not found:
        proc.kill()
        raise RuntimeError("server did not print its listening line")
    return found[0]


def start_server(name: str, workdir: Path, timeout: float, swarms: int) -> Server:
    """Start ``name`` pinned to the server core (``swarms``: how many the load will use);
    raise :class:`Skip` when it cannot run."""
    pin = _pin(SERVER_CPU)
    python = [*pin, sys.executable]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if name in ("ppsp-xml", "ppsp-json", "bare-aiohttp", "bare-ppsp-http"):
        encoding = Encoding.JSON if name == "ppsp-json" else Encoding.XML
        if name.startswith("ppsp"):
            args = [
                *("-m", "ppsp", "tracker", "--port", "0", "--log-level", "warning"),
                *("--init-timeout", "3600", "--track-timeout", "3600"),
                *("--limits", "off", "--dashboard", "off"),
            ]
        elif name == "bare-aiohttp":
            args = ["-m", "bench.tracker_bench", "--serve-bare", "0", "--encoding", "xml"]
        else:
            args = ["-m", "bench.tracker_compare", "--serve-bare-http", "0"]
        proc = subprocess.Popen(
            [*python, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        url = _wait_line(proc, timeout)
        return Server(name, "ppsp", encoding, proc, url, name.startswith("ppsp"))
    port = _free_port()
    if name == "opentracker":
        binary = shutil.which("opentracker")
        if binary is None:
            raise Skip("opentracker not installed (Debian package opentracker)")
        # Debian builds it with an access list: the load's info hashes are whitelisted (hex,
        # one a line, read from the directory it chroots to).  It refuses to keep root: as
        # root it becomes "nobody" (its default -u).  -P: its UDP port (unused here).
        jail = workdir / "opentracker"
        jail.mkdir(exist_ok=True)
        hashes = (f"ih{swarm:018d}".encode().hex() for swarm in range(swarms))
        (jail / "whitelist").write_text("\n".join(hashes) + "\n")
        cmd = [*pin, binary, "-i", "127.0.0.1", "-p", str(port), "-P", str(port)]
        cmd += ["-d", str(jail), "-w", "/whitelist"]
    elif name == "bittorrent-tracker":
        script = ensure_node_tracker(timeout)
        cmd = [*pin, "node", str(script), str(port)]
    else:
        raise ValueError(name)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(proc, port, timeout)
    return Server(name, "bittorrent", None, proc, f"http://127.0.0.1:{port}", True)


def serve_bare_http(port: int, body: bytes, content_type: str) -> None:
    """A POST-anything endpoint on ppsp's own HTTP server answering ``body`` (subprocess)."""
    from ppsp.http.server import Request, Response, serve

    async def handle(request: Request) -> Response:
        await request.read_body(MAX_BODY)
        return Response(200, body, content_type=content_type)

    async def main() -> None:
        server = await serve(handle, "127.0.0.1", port, backlog=1024, body_limit=MAX_BODY)
        host, real_port = server.addresses[0][:2]
        print(f"bare endpoint listening on http://{host}:{real_port}", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


# -- wrk ----------------------------------------------------------------------------------------


@dataclass
class Harness:
    """What every wrk run shares: options, the templates, the churn counter."""

    args: argparse.Namespace
    templates: dict[Encoding, Path]
    wrk2: str | None
    workdir: Path
    runs: int = 0

    def next_churn_base(self) -> int:
        """A churn peer range no earlier run used."""
        self.runs += 1
        threads: int = self.args.threads
        return self.runs * CHURN_RING * max(1, threads)


def run_wrk(
    h: Harness,
    server: Server,
    script: str,
    script_args: Sequence[object],
    duration: float,
    connections: int,
    rate: float | None = None,
    flag: str | None = None,
) -> dict[str, Any]:
    """One wrk run against ``server``: wrk's figures plus the server's CPU and RSS around it.

    ``flag``: the file prefix a setup script's threads write when they are done.
    """
    binary = h.wrk2 if rate and h.wrk2 else "wrk"
    cmd = [*_pin(CLIENT_CPU), binary, "-t", str(h.args.threads), "-c", str(connections)]
    cmd += ["-d", f"{max(1, round(duration))}s", "--timeout", "10s"]
    if rate and h.wrk2:
        cmd += ["-R", str(round(rate))]
    cmd += ["-s", str(WRK_DIR / script), server.url + "/", "--", *map(str, script_args)]
    cpu0, rss0 = _cpu_seconds(server.pid), _rss_bytes(server.pid)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if flag is not None:
            # wrk sleeps its whole -d even when every thread stopped: interrupt it (SIGINT ends
            # the sleep, and wrk still reports) once each thread wrote its file.
            deadline = time.monotonic() + duration
            names = [Path(f"{flag}{tid}") for tid in range(h.args.threads)]
            while proc.poll() is None and time.monotonic() < deadline:
                if all(name.exists() for name in names):
                    proc.send_signal(signal.SIGINT)
                    break
                time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=duration + h.args.timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cpu1, rss1 = _cpu_seconds(server.pid), _rss_bytes(server.pid)
    lines = [x for x in stdout.splitlines() if x.startswith("WRKJSON ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed on {server.name}: {stdout[-500:]}{stderr[-500:]}")
    got: dict[str, Any] = json.loads(lines[-1][len("WRKJSON ") :])
    seconds = got["duration_us"] / 1e6
    requests = got["requests"]
    cpu = cpu1 - cpu0
    # wrk's "status" errors (non-2xx/3xx) and the setup scripts' non-200 count the same
    # answers when both are there: take the larger, not the sum.
    wrk_errors = got["errors"]
    errors = sum(v for k, v in wrk_errors.items() if k != "status")
    errors += max(wrk_errors["status"], got["not_200"])
    return {
        "requests": requests,
        "seconds": round(seconds, 3),
        "requests_per_second": round(requests / seconds, 1) if seconds else 0.0,
        "server_cpu_seconds": round(cpu, 3),
        "server_cpu_us_per_request": round(cpu / requests * 1e6, 1) if requests else None,
        "latency_ms": {k: v / 1000 for k, v in got["latency_us"].items()},
        "errors": got["errors"],
        "not_200_in_setup": got["not_200"],
        "error_total": errors,
        "rss_before": rss0,
        "rss_after": rss1,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def mixed_args(h: Harness, server: Server, rate: float, connections: int) -> tuple[str, list[Any]]:
    """The mixed-load script of ``server`` and its arguments (``rate``: 0 for unlimited)."""
    peers = h.args.peers
    swarms = max(1, peers // PEERS_PER_SWARM)
    per_thread = rate / h.args.threads if rate else 0
    per_conn = connections // h.args.threads
    base = h.next_churn_base()
    if server.protocol == "bittorrent":
        return "bt_mixed.lua", [peers, swarms, base, CHURN_RING, per_thread, per_conn]
    assert server.encoding is not None
    tpl = h.templates[server.encoding]
    return "ppsp_mixed.lua", [tpl, peers, swarms, base, CHURN_RING, per_thread, per_conn]


def register(h: Harness, server: Server, peers: int) -> dict[str, Any]:
    """Register ``peers`` peers (20 per swarm); the RSS per peer measured from outside."""
    swarms = max(1, peers // PEERS_PER_SWARM)
    flag = f"{h.workdir}/setup-{h.next_churn_base()}-"
    if server.protocol == "bittorrent":
        script, sargs = "bt_setup.lua", [peers, swarms, h.args.threads, flag]
    else:
        assert server.encoding is not None
        script = "ppsp_setup.lua"
        sargs = [h.templates[server.encoding], peers, swarms, h.args.threads, flag]
    time.sleep(0.5)  # let the start-up settle before the first RSS reading
    out = run_wrk(h, server, script, sargs, h.args.timeout, h.args.connections, flag=flag)
    out["peers"] = peers
    out["swarms"] = swarms
    grown = out["rss_after"] - out["rss_before"]
    out["rss_bytes_per_peer"] = round(grown / peers, 1)
    return out


def peers_in_answer(server: Server) -> int | str | None:
    """Peers in one FIND answer (PPSP) or one compact announce answer (BitTorrent) of peer 0:
    the servers answer real peer lists, not just 200."""
    if server.protocol == "bittorrent":
        url = f"{server.url}/announce?info_hash=ih{0:018d}&peer_id=-PP0001-{0:012d}"
        url += "&port=10000&uploaded=0&downloaded=0&left=0&compact=1&numwant=20"
        with urllib.request.urlopen(url, timeout=10) as resp:
            data = resp.read()
        marker = data.find(b"5:peers")
        if marker < 0:
            return None
        length = data[marker + 7 : data.index(b":", marker + 7)]
        return int(length) // 6
    assert server.encoding is not None
    codec = codec_for(server.encoding)
    body = codec.encode_request(
        FindRequest(
            version=V11,
            transaction_id="9",
            peer_id=PEER_FORMAT % 0,
            swarm_id=SWARM_FORMAT % 0,
        )
    )
    request = urllib.request.Request(
        server.url + "/",
        data=body,
        headers={"Content-Type": server.encoding.content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            answer = codec.decode_response(resp.read(), resp.status, resp.reason or "")
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read()[:300]!r}"
    return len(answer.peers) if isinstance(answer, TrackerResponse) else None


# -- the run ------------------------------------------------------------------------------------


def _revision() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = [x for x in git("status", "--porcelain", "--", "src", "bench").splitlines() if x]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_files": changed}


def checkpoint(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Write the report so far (``"complete": false``): a long run interrupted keeps its
    finished phases."""
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


def _swarms(peers: int) -> int:
    return max(1, peers // PEERS_PER_SWARM)


def _median(values: Sequence[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return round(statistics.median(real), 3) if real else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase; the report (JSON-ready)."""
    workdir = Path(tempfile.mkdtemp(prefix="ppsp-compare-"))
    try:
        return _run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    templates = {}
    for encoding in (Encoding.XML, Encoding.JSON):
        templates[encoding] = workdir / f"templates-{encoding.value}.lua"
        templates[encoding].write_text(templates_lua(encoding))
    h = Harness(args, templates, shutil.which("wrk2"), workdir)
    report: dict[str, Any] = {
        "command": " ".join(["python", "-m", "bench.tracker_compare", *args.argv]),
        "revision": _revision(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
            "pinning": "servers on CPU 0, wrk on CPU 1" if _pin("0") else "none (one CPU)",
            "wrk": subprocess.run(
                ["wrk", "--version"], capture_output=True, text=True
            ).stdout.splitlines()[0:1],
        },
        "workload": {
            "peers": args.peers,
            "swarms": max(1, args.peers // PEERS_PER_SWARM),
            "round_seconds": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "ppsp_mix": "40% STAT_REPORT (256-chunk content map), 40% FIND, 20% churn "
            "(CONNECT, JOIN, DISCONNECT of a fresh peer); peers and swarms drawn from the pool",
            "bittorrent_mix": "80% periodic announce, 20% churn (started, announce, stopped); "
            "compact=1, numwant=20",
            "rate_limited": "wrk2 -R"
            if h.wrk2
            else "wrk + Lua delay() (exponential per "
            "connection, calibrated by a pilot run); wrk2 is not installed",
        },
        "complete": False,
        "skipped": {},
        "servers": {},
        "rounds": [],
        "rate_limited": {},
        "big": {},
    }
    servers: list[Server] = []
    try:
        for name in args.only:
            try:
                servers.append(start_server(name, workdir, args.timeout, _swarms(args.peers)))
            except Skip as note:
                report["skipped"][name] = str(note)
                print(f"{name}: skipped: {note}", file=sys.stderr)
        for server in servers:
            entry: dict[str, Any] = {
                "protocol": server.protocol,
                "pid": server.pid,
                "started": server.started,
            }
            if server.encoding is not None:
                entry["encoding"] = server.encoding.value
            if server.registered:
                entry["registration"] = register(h, server, args.peers)
                entry["peers_in_answer"] = peers_in_answer(server)
            report["servers"][server.name] = entry
            checkpoint(args, report)
            done = f", {args.peers} peers registered" if server.registered else ""
            print(f"{server.name}: started{done}", file=sys.stderr)
        for server in servers if args.warmup > 0 else ():  # warm-up, not reported
            script, sargs = mixed_args(h, server, 0, args.connections)
            run_wrk(h, server, script, sargs, args.warmup, args.connections)
        for index in range(args.rounds):
            shift = index % max(1, len(servers))
            order = servers[shift:] + servers[:shift]
            for server in order:
                script, sargs = mixed_args(h, server, 0, args.connections)
                got = run_wrk(h, server, script, sargs, args.duration, args.connections)
                got.update(server=server.name, round=index + 1)
                report["rounds"].append(got)
                checkpoint(args, report)
                print(
                    f"round {index + 1} {server.name}: {got['requests_per_second']} req/s, "
                    f"{got['server_cpu_us_per_request']} us/req",
                    file=sys.stderr,
                )
        for server in servers:
            mine = [r for r in report["rounds"] if r["server"] == server.name]
            entry = report["servers"][server.name]
            entry["requests_per_second"] = _median([r["requests_per_second"] for r in mine])
            entry["server_cpu_us_per_request"] = _median(
                [r["server_cpu_us_per_request"] for r in mine]
            )
            entry["p50_ms"] = _median([r["latency_ms"]["p50"] for r in mine])
            entry["p99_ms"] = _median([r["latency_ms"]["p99"] for r in mine])
            entry["errors"] = sum(r["error_total"] for r in mine)
            if server.name == "opentracker":
                # It closes the connection after each answer (no keep-alive): wrk counts the
                # close as a read error and reconnects.  Those are not failed requests.
                entry["errors"] -= sum(r["errors"]["read"] for r in mine)
                entry["note"] = "closes the connection after each answer; wrk reconnects"
            if args.rate_limited:
                report["rate_limited"][server.name] = rate_limited(
                    h, server, entry["requests_per_second"]
                )
    finally:
        for server in servers:
            server.stop()
    for name in args.big_servers if args.big_peers else ():
        if name not in args.only or name in report["skipped"]:
            continue
        try:
            server = start_server(name, workdir, args.timeout, _swarms(args.big_peers))
        except Skip as note:
            report["big"][name] = {"skipped": str(note)}
            continue
        try:
            got = register(h, server, args.big_peers)
            got["peers_in_answer"] = peers_in_answer(server)
            got["started"] = server.started
            report["big"][name] = got
            checkpoint(args, report)
            print(
                f"{name}: {got['rss_bytes_per_peer']} B/peer at {args.big_peers}", file=sys.stderr
            )
        finally:
            server.stop()
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["revision_at_end"] = _revision()
    report["complete"] = True
    report["targets"] = verdicts(report)
    return report


def rate_limited(h: Harness, server: Server, saturation: float | None) -> dict[str, Any]:
    """p99 latency at 80 % of ``saturation`` requests/s (see the module docstring)."""
    if not saturation:
        return {"skipped": "no saturating rate"}
    target = 0.8 * saturation
    conns = h.args.rate_connections
    rate = target
    pilot = None
    if not h.wrk2:
        # Each connection waits delay() after its answer: its cycle is delay + latency, so the
        # pilot's achieved rate tells the latency to take off the mean delay.
        script, sargs = mixed_args(h, server, rate, conns)
        pilot = run_wrk(h, server, script, sargs, max(2.0, h.args.duration / 2), conns, rate)
        achieved = pilot["requests_per_second"] or target
        cycle = conns / achieved  # seconds per request per connection
        latency = max(0.0, cycle - conns / rate)
        wanted = conns / target - latency
        rate = conns / wanted if wanted > 0 else target * 4
    script, sargs = mixed_args(h, server, rate, conns)
    got = run_wrk(h, server, script, sargs, h.args.duration, conns, rate)
    got["target_requests_per_second"] = round(target, 1)
    got["saturation_requests_per_second"] = saturation
    got["achieved_fraction_of_saturation"] = round(got["requests_per_second"] / saturation, 3)
    if pilot is not None:
        got["pilot_requests_per_second"] = pilot["requests_per_second"]
    return got


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 16's targets for each ppsp server: met, missed or not measured (never rounded)."""
    out = []
    for name in ("ppsp-xml", "ppsp-json"):
        entry = report["servers"].get(name)
        if entry is None:
            continue
        cpu = entry.get("server_cpu_us_per_request")
        out.append(_verdict(name, "CPU per mixed request (us)", cpu, TARGETS["cpu_us_per_request"]))
        big = report["big"].get(name, {})
        rss = big.get("rss_bytes_per_peer") if big.get("peers") == 1_000_000 else None
        out.append(
            _verdict(
                name, "RSS per peer at 1,000,000 (B)", rss, TARGETS["rss_bytes_per_peer_at_1m"]
            )
        )
        limited = report["rate_limited"].get(name, {})
        p99 = limited.get("latency_ms", {}).get("p99")
        out.append(_verdict(name, "p99 at 80% of saturation (ms)", p99, TARGETS["p99_ms_at_80"]))
    return out


def _verdict(server: str, what: str, value: float | None, bound: float) -> dict[str, Any]:
    status = "not measured" if value is None else ("met" if value <= bound else "missed")
    return {"server": server, "target": what, "bound": bound, "value": value, "status": status}


def table(report: dict[str, Any]) -> str:
    """The markdown table of the report, and the targets."""
    big_n = next((b["peers"] for b in report["big"].values() if "peers" in b), None)
    head = [
        "server",
        "load",
        "req/s",
        "CPU µs/req",
        "p50 ms",
        "p99 ms",
        "p99 ms at 80% (req/s)",
        f"RSS B/peer at {report['workload']['peers']:,}",
    ]
    if big_n:
        head.append(f"RSS B/peer at {big_n:,}")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in report["servers"].items():
        load = (
            "announce"
            if entry["protocol"] == "bittorrent"
            else f"PPSP mixed {entry.get('encoding', '')}"
        )
        limited = report["rate_limited"].get(name, {})
        p99_80 = (
            f"{limited['latency_ms']['p99']:.2f} ({limited['requests_per_second']:.0f})"
            if "latency_ms" in limited
            else "-"
        )
        reg = entry.get("registration")
        cells = [
            name,
            load,
            f"{entry.get('requests_per_second') or 0:,.0f}",
            f"{entry.get('server_cpu_us_per_request') or 0:.1f}",
            f"{entry.get('p50_ms') or 0:.2f}",
            f"{entry.get('p99_ms') or 0:.2f}",
            p99_80,
            f"{reg['rss_bytes_per_peer']:,.0f}" if reg else "-",
        ]
        if big_n:
            big = report["big"].get(name, {})
            cells.append(
                f"{big['rss_bytes_per_peer']:,.0f}" if "rss_bytes_per_peer" in big else "-"
            )
        rows.append("| " + " | ".join(cells) + " |")
    for name, note in report["skipped"].items():
        rows.append(f"| {name} | skipped: {note} |" + " |" * (len(head) - 2))
    lines = [
        "\n".join(rows),
        "",
        "| server | target | bound | value | status |",
        "|---|---|---|---|---|",
    ]
    for v in report["targets"]:
        lines.append(
            f"| {v['server']} | {v['target']} | {v['bound']} | {v['value']} | {v['status']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, print the table, write the JSON."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracker_compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="2 s rounds, 10,000 peers, no 1M")
    parser.add_argument("--only", nargs="+", choices=ALL_SERVERS, default=list(ALL_SERVERS))
    parser.add_argument("--peers", type=int, default=None, help="registered peers (100,000)")
    parser.add_argument("--big-peers", type=int, default=None, help="RSS run (1,000,000; 0: none)")
    parser.add_argument(
        "--big-servers",
        nargs="+",
        choices=ALL_SERVERS,
        default=["opentracker", "bittorrent-tracker", "ppsp-xml"],
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per round (10)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (5)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per server")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--rate-connections", type=int, default=50, help="for the 80%% run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--no-rate-limited", dest="rate_limited", action="store_false")
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on each step, s")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report")
    parser.add_argument("--serve-bare-http", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.serve_bare_http is not None:
        serve_bare_http(args.serve_bare_http, bare_body(Encoding.XML), Encoding.XML.content_type)
        return 0
    quick = args.quick
    args.peers = args.peers or (10_000 if quick else 100_000)
    args.big_peers = (0 if quick else 1_000_000) if args.big_peers is None else args.big_peers
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.rounds = args.rounds or (2 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 3.0)
    if shutil.which("wrk") is None:
        parser.error("wrk is needed (Debian package wrk)")
    if args.peers < args.threads * PEERS_PER_SWARM:
        parser.error("--peers too small")
    if args.out is None and not quick:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        args.out = ROOT / "docs" / "benchmarks" / "tracker-compare" / f"run-{stamp}.json"
    report = run(args)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
