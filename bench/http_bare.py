"""A bare ppsp.http endpoint (or, with FLOOR=1, a minimal asyncio Protocol answering in
data_received) under a raw keep-alive client in a subprocess: server CPU per request; with CG=1
under callgrind, the counters zeroed before and dumped after the counted requests (N requests
over CONNS connections, a POST of 1,200 B answered with 3,000 B).  From the checkout:

    N=4000 CG=1 valgrind --tool=callgrind --dump-instr=no --dump-line=no \
        .venv/bin/python bench/http_bare.py

(the dump ending in .1 holds the counted requests; its "totals" / N is the figure).
"""

import asyncio
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, "src")  # run from the checkout
N = int(os.environ.get("N", "20000"))
CONNS = int(os.environ.get("CONNS", "32"))
BODY = b"x" * 1200
ANSWER = b"y" * 3000
PROFILE = os.environ.get("PROFILE")

CLIENT = r"""
import asyncio, sys
port, n, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = b"x" * 1200
req = (b"POST /ppsp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
       b"Content-Type: application/ppsp-tracker+xml\r\n"
       b"Content-Length: %d\r\n\r\n" % (port, len(body))) + body
class C(asyncio.Protocol):
    def __init__(s, left):
        s.left=left; s.buf=bytearray(); s.done=asyncio.get_running_loop().create_future()
    def connection_made(s, t): s.t=t; t.write(req)
    def data_received(s, d):
        s.buf += d
        while True:
            e = s.buf.find(b"\r\n\r\n")
            if e < 0: return
            i = s.buf.find(b"Content-Length: ", 0, e)
            ln = int(s.buf[i+16:s.buf.find(b"\r\n", i)])
            if len(s.buf) < e+4+ln: return
            del s.buf[:e+4+ln]
            s.left -= 1
            if s.left <= 0: s.t.close(); s.done.set_result(None); return
            s.t.write(req)
async def main():
    loop = asyncio.get_running_loop()
    ps = []
    for _ in range(conns):
        _, p = await loop.create_connection(lambda: C(n // conns), "127.0.0.1", port)
        ps.append(p)
    await asyncio.gather(*(p.done for p in ps))
import uvloop
uvloop.run(main())
"""


async def main():
    from ppsp.http.server import Request, Response, serve

    async def handle(request: Request) -> Response:
        body = request.body_if_arrived(65536)
        if body is None:
            body = await request.read_body(65536)
        request.headers.get("content-type")  # what the tracker reads of every head
        return Response(200, ANSWER, content_type="application/ppsp-tracker+xml")

    if os.environ.get("FLOOR"):

        class Floor(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t
                self.buf = bytearray()

            def data_received(self, d):
                buf = self.buf
                buf += d
                e = buf.find(b"\r\n\r\n")
                if e < 0:
                    return
                i = buf.find(b"Content-Length: ", 0, e)
                n = int(buf[i + 16 : buf.find(b"\r\n", i)])
                if len(buf) < e + 4 + n:
                    return
                del buf[: e + 4 + n]
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + ANSWER)

        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Floor, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]

        class S:
            async def close(self):
                srv.close()

        server = S()
    else:
        server = await serve(handle, "127.0.0.1", 0, backlog=1024)
        port = server.addresses[0][1]

    async def run(n):
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, str(port), str(n), str(CONNS)
        )
        await p.wait()

    await run(2000)  # warm-up
    if PROFILE:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
    if os.environ.get("CG"):
        subprocess.run(
            ["callgrind_control", "--zero", str(os.getpid())], check=True, capture_output=True
        )
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await run(N)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    t1 = time.perf_counter()
    if os.environ.get("CG"):
        subprocess.run(
            ["callgrind_control", "--dump", str(os.getpid())], check=True, capture_output=True
        )
    if PROFILE:
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(30)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    user = (r1.ru_utime - r0.ru_utime) / N * 1e6
    rate = N / (t1 - t0)
    print(f"server CPU {cpu / N * 1e6:.1f} us/req (user {user:.1f}), wall {rate:.0f} req/s")
    await server.close()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
