"""Codecs: bytes <-> the wire model's messages, one module per encoding, and nothing else.

Tracker XML (the drafts) and JSON (RFC 7846), the peer protocol's XML, the hardened XML parser,
HTTP response heads, the chunked transfer coding and Range headers.  Every parse failure is the
protocol's own error.

Layer: sans-I/O.  May import ``ppsp.wire``, ``ppsp.errors`` and lxml/orjson; no asyncio,
aiohttp, socket, threading or clock, nothing of ``ppsp.tracker``, ``ppsp.peer``, ``ppsp.app``
(tests/test_layers.py enforces this).
"""
