"""PPSP peers: the peer protocol, content, transfer and streaming."""
