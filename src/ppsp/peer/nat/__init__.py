"""NAT traversal for peers, sans-I/O: the STUN Binding client transaction that learns a UDP
socket's reflexive address (RFC 8489), with its retransmission timers driven by the time the
I/O layer passes in.

Layer: sans-I/O, as :mod:`ppsp.peer`.  May import ``ppsp.wire``, ``ppsp.codecs``,
``ppsp.core`` and ``ppsp.errors``; no sockets, asyncio or clock reads (tests/test_layers.py).
"""
