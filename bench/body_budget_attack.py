"""Request bodies held by a real `ppsp seed`: 5 hosts (127.0.9.9 .. 127.0.9.13), 64 connections
each, every one POSTing a 1 MiB peer-protocol body slowly (64 KiB a second); a connection that
is answered or cut is opened again (at most every 0.2 s).  Meanwhile an honest host
(127.0.4.4) POSTs a FIND_CHUNK every second and runs a `ppsp get` of the seeded file.

Usage: python -m bench.body_budget_attack [SECONDS] [--hosts N] [--piece BYTES]
Prints the seeder's RSS before and at its peak, the attackers' answers, the honest results.
With ``--hosts N`` there are N attacking hosts (127.0.9.9 ..); with ``--piece BYTES`` each
attacking connection sends that many bytes a second (64 KiB by default: a 1 MiB body within
its 30 s body timeout; 4096 lags it).  The honest host also POSTs every second a FIND_CHUNK
whose body comes 0.1 s after its head (charged to the budget).

With ``--target tracker [--hosts N] [--proxy]`` the target is a real `ppsp tracker` on
127.0.2.2 (pinned to one core, its default bounds: bodies of at most 64 KiB, 64 connections
per host): N attacking hosts (20 by default, 127.0.9.9 ..), 64 connections each, every one
POSTing a 64 KiB PPSP-TP body at 4 KiB a second (``--piece``), which lags the 10 s body
timeout.  Meanwhile an honest host (127.0.4.4) POSTs
every second a CONNECT whole with its head and one whose body comes 0.1 s after its head
(charged to the budget).  With ``--proxy`` every connection comes from one trusted reverse
proxy (127.0.8.8, ``--trusted-proxy``) naming its client in ``X-Forwarded-For``: the
attackers as 198.51.100.1 .., the honest client as 198.51.100.200.  Prints the tracker's RSS,
the answers (status and media type) and the honest results."""

import collections
import contextlib
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
DURATION = float(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1][:1].isdigit() else 20.0
TARGET = sys.argv[sys.argv.index("--target") + 1] if "--target" in sys.argv else "seeder"
N_HOSTS = int(sys.argv[sys.argv.index("--hosts") + 1]) if "--hosts" in sys.argv else None
PIECE_ARG = int(sys.argv[sys.argv.index("--piece") + 1]) if "--piece" in sys.argv else None
PROXY = "127.0.8.8" if "--proxy" in sys.argv else None
HOSTS = [f"127.0.9.{9 + i}" for i in range(5 if N_HOSTS is None else N_HOSTS)]
PER_HOST = 64
BODY = 1 << 20
PIECE = 64 << 10


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(host, port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{host}:{port} not up")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def ppsp(*args, **kw):
    return subprocess.Popen(["taskset", "-c", "0", PY, "-m", "ppsp", *args], **kw)


def stop(*procs):
    for p in procs:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        if p is None:
            continue
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def honest_post(host, port, swarm, split=False):
    from ppsp.codecs.peer_xml.encode import encode_request
    from ppsp.wire.peer import FindRequest, PeerMethod

    body = encode_request(
        FindRequest(
            transaction_id=str(random.randrange(1 << 30)),
            peer_id="a" * 40,
            swarm_id=swarm,
            method=PeerMethod.FIND_CHUNK,
            chunk_ids=(1, 2),
        )
    )
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-peer+xml\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    t = time.perf_counter()
    try:
        data = post_once(host, port, "127.0.4.4", head, body, split, b"\r\n")
        return data.split(b"\r\n")[0].decode(), time.perf_counter() - t
    except OSError as exc:
        return f"failed: {exc!r}", time.perf_counter() - t


def post_once(host, port, source, head, body, split, until):
    """Send ``head`` and ``body`` from ``source`` (the body's first 10 bytes with the head and
    the rest 0.1 s later when ``split``); the answer's bytes up to ``until`` (OSError when the
    connection fails)."""
    s = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
    try:
        if split:
            s.sendall(head + body[:10])
            time.sleep(0.1)
            with contextlib.suppress(OSError):  # refused and closed already: answer read below
                s.sendall(body[10:])
        else:
            s.sendall(head + body)
        data = b""
        while until not in data:
            got = s.recv(4096)
            if not got:
                break
            data += got
        return data
    finally:
        s.close()


def answer_of(data):
    """An answer's status and media type (``"503 text/plain"``), or ``"closed"``."""
    if not data.startswith(b"HTTP/"):
        return "closed"
    kind = b"?"
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            kind = value.strip().split(b";")[0]
    return f"{data[9:12].decode()} {kind.decode()}"


class SlowBodies:
    """The attack: from each source address, ``per_source`` connections at a time, each sending
    its request head (``heads[i]`` from ``sources[i]``) and then its body of ``body_len`` bytes
    a piece of ``piece_len`` each second; a connection closed or answered is opened again
    0.2 s later.  ``answers`` counts what the server answered (status and media type)."""

    def __init__(self, target, sources, heads, per_source, body_len, piece_len):
        self.target = target
        self.sources = sources
        self.heads = heads
        self.per_source = per_source
        self.body_len = body_len
        self.piece = b"<" * piece_len
        self.sel = selectors.DefaultSelector()
        self.conns = {}  # sock -> [source index, bytes sent, next send at]
        self.answers = collections.Counter()
        self.reopen = [0.0] * len(sources)
        self.count = [0] * len(sources)

    def _drop(self, s, now):
        st = self.conns.pop(s)
        self.sel.unregister(s)
        s.close()
        self.count[st[0]] -= 1
        self.reopen[st[0]] = now + 0.2

    def step(self, now):
        """Open what is missing, send what is due, read the answers (waits 50 ms at most)."""
        for i, source in enumerate(self.sources):
            while self.count[i] < self.per_source and now >= self.reopen[i]:
                try:
                    s = socket.create_connection(self.target, timeout=2, source_address=(source, 0))
                    s.sendall(self.heads[i])
                    s.setblocking(False)
                except OSError:
                    self.answers["connect failed"] += 1
                    self.reopen[i] = now + 0.2
                    break
                self.conns[s] = [i, 0, now]
                self.count[i] += 1
                self.sel.register(s, selectors.EVENT_READ)
        piece = self.piece
        for s, st in list(self.conns.items()):
            if st[1] < self.body_len and now >= st[2]:
                try:
                    st[1] += s.send(piece[: min(len(piece), self.body_len - st[1])])
                except BlockingIOError:
                    pass
                except OSError:
                    self.answers["cut while sending"] += 1
                    self._drop(s, now)
                    continue
                st[2] = now + 1.0
        for key, _ in self.sel.select(timeout=0.05):
            s = key.fileobj
            if s not in self.conns:
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            self.answers[answer_of(data)] += 1
            self._drop(s, now)

    def close(self):
        """Close every connection still open."""
        for s in self.conns:
            s.close()


def main():
    work = tempfile.mkdtemp(prefix="body-budget-")
    path = os.path.join(work, "f8.bin")
    with open(path, "wb") as f:
        f.write(random.Random(1).randbytes(8 << 20))
    tport = free_port("127.0.0.1")
    tracker = ppsp(
        "tracker",
        "--host",
        "127.0.0.1",
        "--port",
        str(tport),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seeder = getter = None
    try:
        wait_port("127.0.0.1", tport)
        host, port = "127.0.2.2", free_port("127.0.2.2")
        seeder = ppsp(
            "seed",
            path,
            "--tracker",
            f"http://127.0.0.1:{tport}",
            "--host",
            host,
            "--port",
            str(port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        swarm = seeder.stdout.readline().strip()
        wait_port(host, port)
        time.sleep(1.0)
        before = rss_kib(seeder.pid)
        print(f"seeder RSS before: {before / 1024:.1f} MiB")
        head = (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-peer+xml\r\n"
            b"Content-Length: %d\r\n\r\n" % BODY
        )
        piece = PIECE if PIECE_ARG is None else PIECE_ARG
        print(f"{len(HOSTS)} attacking hosts, each connection sending {piece} bytes a second")
        attack = SlowBodies((host, port), HOSTS, [head] * len(HOSTS), PER_HOST, BODY, piece)
        start = time.time()
        end = start + DURATION
        peak = before
        honest = []
        honest_split = []
        next_honest = start + 2.0
        get_started = False
        getter_out = os.path.join(work, "out.bin")
        while time.time() < end:
            now = time.time()
            attack.step(now)
            peak = max(peak, rss_kib(seeder.pid))
            if now >= next_honest:
                honest.append(honest_post(host, port, swarm))
                honest_split.append(honest_post(host, port, swarm, split=True))
                next_honest = time.time() + 1.0
            if not get_started and now > start + 3.0:
                get_started = True
                get_t0 = time.time()
                getter = ppsp(
                    "get",
                    swarm,
                    "--tracker",
                    f"http://127.0.0.1:{tport}",
                    "--host",
                    "127.0.4.4",
                    "-o",
                    getter_out,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            if getter is not None and "get_time" not in locals() and getter.poll() is not None:
                get_time = time.time() - get_t0
        print(
            f"seeder RSS peak under attack: {peak / 1024:.1f} MiB (+{(peak - before) / 1024:.1f})"
        )
        print(
            f"connections open at the end: {len(attack.conns)};"
            f" attackers' answers: {dict(attack.answers)}"
        )
        for kind, results in (("whole", honest), ("split", honest_split)):
            statuses = collections.Counter(st for st, _ in results)
            print(
                f"honest FIND_CHUNK POSTs, body {kind}: {dict(statuses)},"
                f" slowest {max(t for _, t in results) * 1000:.0f} ms"
            )
        if getter is not None:
            try:
                getter.wait(max(1, 40 - (time.time() - get_t0)))
                ok = Path(getter_out).read_bytes() == Path(path).read_bytes()
                took = get_time if "get_time" in locals() else time.time() - get_t0
                print(
                    f"honest ppsp get: exit {getter.returncode}, identical {ok}, in {took:.1f} s"
                    f" ({'while attacked' if 'get_time' in locals() else 'after the attack'})"
                )
            except (subprocess.TimeoutExpired, FileNotFoundError) as exc:
                print(
                    "honest ppsp get failed:",
                    exc,
                    getter.stderr.read() if getter.poll() is not None else "",
                )
        attack.close()
        stop(getter, seeder, tracker)
        err = seeder.stderr.read()
        print("seeder log lines:", len(err.splitlines()), (err.splitlines() or [""])[-1][:200])
    finally:
        stop(getter, seeder, tracker)


def tracker_connect(honest_id):
    from ppsp.codecs.tracker import codec_for
    from ppsp.wire.tracker import ConnectRequest, Encoding, ProtocolVersion

    return codec_for(Encoding.XML).encode_request(
        ConnectRequest(version=ProtocolVersion.V1_1, transaction_id="1", peer_id=honest_id)
    )


def honest_tracker_post(host, port, body, split, forwarded):
    """One CONNECT from the honest host: (status, media type), seconds."""
    source = PROXY or "127.0.4.4"
    extra = b"X-Forwarded-For: %s\r\n" % forwarded.encode() if PROXY else b""
    head = (
        b"POST /announce HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-tracker+xml\r\n"
        b"Connection: close\r\n%sContent-Length: %d\r\n\r\n" % (extra, len(body))
    )
    t = time.perf_counter()
    try:
        data = post_once(host, port, source, head, body, split, b"\r\n\r\n")
        return answer_of(data), time.perf_counter() - t
    except OSError as exc:
        return f"failed: {exc!r}", time.perf_counter() - t


def main_tracker():
    body_len, per_host = 64 << 10, 64
    piece_len = 4 << 10 if PIECE_ARG is None else PIECE_ARG
    host, port = "127.0.2.2", free_port("127.0.2.2")
    args = ["tracker", "--host", host, "--port", str(port)]
    if PROXY:
        args += ["--trusted-proxy", f"{PROXY}/32"]
    tracker = ppsp(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    n_hosts = 20 if N_HOSTS is None else N_HOSTS
    hosts = [f"127.0.9.{9 + i}" for i in range(n_hosts)]
    clients = [f"198.51.100.{1 + i}" for i in range(n_hosts)]
    try:
        wait_port(host, port)
        time.sleep(1.0)
        before = rss_kib(tracker.pid)
        print(
            f"tracker RSS before: {before / 1024:.1f} MiB; {n_hosts} attacking"
            f" {'clients behind the proxy ' + PROXY if PROXY else 'hosts'}"
        )
        heads = [
            b"POST /announce HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-tracker+xml\r\n"
            b"%sContent-Length: %d\r\n\r\n"
            % (b"X-Forwarded-For: %s\r\n" % client.encode() if PROXY else b"", body_len)
            for client in clients
        ]
        sources = [PROXY or source for source in hosts]
        attack = SlowBodies((host, port), sources, heads, per_host, body_len, piece_len)
        start = time.time()
        end = start + DURATION
        peak = before
        honest = {"whole": [], "split": []}
        next_honest = start + 2.0
        serial = 0
        while time.time() < end:
            now = time.time()
            attack.step(now)
            peak = max(peak, rss_kib(tracker.pid))
            if now >= next_honest:
                for kind in ("whole", "split"):
                    serial += 1
                    body = tracker_connect(f"honest-{serial}")
                    honest[kind].append(
                        honest_tracker_post(host, port, body, kind == "split", "198.51.100.200")
                    )
                next_honest = time.time() + 1.0
        print(
            f"tracker RSS peak under attack: {peak / 1024:.1f} MiB (+{(peak - before) / 1024:.1f})"
        )
        print(
            f"connections open at the end: {len(attack.conns)};"
            f" attackers' answers: {dict(attack.answers)}"
        )
        for kind, results in honest.items():
            statuses = collections.Counter(st for st, _ in results)
            slowest = max((t for _, t in results), default=0.0)
            print(
                f"honest CONNECTs, body {kind}: {dict(statuses)}, slowest {slowest * 1000:.0f} ms"
            )
        attack.close()
    finally:
        stop(tracker)
        err = tracker.stderr.read() if tracker.stderr else ""
        print("tracker log lines:", len(err.splitlines()), (err.splitlines() or [""])[-1][:200])


if TARGET == "tracker":
    main_tracker()
else:
    main()
