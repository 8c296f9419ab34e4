"""The peer protocol's sans-I/O side: the request handler and the addresses a peer advertises.

Layer: sans-I/O (see ``ppsp.peer``).
"""
