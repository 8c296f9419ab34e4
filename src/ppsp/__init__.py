"""ppsp: the IETF Peer-to-Peer Streaming Protocol, a tracker and streaming peers."""

__version__ = "0.1.0"
