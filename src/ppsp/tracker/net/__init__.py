"""The tracker's I/O: HTTP server and its guards, worker processes, Redis storage, HTTP client.

Layer: I/O.  Moves bytes and waits; decisions are the sans-I/O ``ppsp.tracker``'s.  May import
every sans-I/O layer and ``ppsp.process``; never ``ppsp.peer``, ``ppsp.app`` or ``ppsp.lab``.
"""
