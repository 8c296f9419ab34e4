"""The peers' I/O: the HTTP endpoint, chunk transfers, the file store, the download loops.

Layer: I/O.  May import every sans-I/O layer, ``ppsp.tracker.net`` (the tracker client) and
``ppsp.process``; never ``ppsp.app`` or ``ppsp.lab``.
"""
