"""A lean HTTP/1.1 client and server on asyncio (I/O layer): the peers' and the tracker's.

Why not aiohttp here: a peer command's start-up was dominated by importing aiohttp (about
0.19 s, most of it TLS contexts and the CA store built at import), aiohttp's per-request cost was
most of the tracker's, and both need only a small part of HTTP: keep-alive connections, bounded
heads and bodies, Content-Length and chunked framing, Range, timeouts in seconds.  Heads are
parsed by the sans-I/O codec :mod:`ppsp.codecs.httphead`; this package only moves bytes and
waits.

Layer: I/O.  May import: the standard library, ``ppsp.wire``, ``ppsp.codecs``, ``ppsp.core`` and
``ppsp.errors``; never ``ppsp.peer``, ``ppsp.tracker``, ``ppsp.app`` or ``ppsp.lab``, and never
aiohttp (the point of the package).
"""
