"""What a peer uploads to whom: upload slots and bytes shared per requesting host.

- :mod:`ppsp.peer.upload.fair`: :class:`~ppsp.peer.upload.fair.FairUploads`, which chunk
  request starts, waits its turn or is refused, host by host (the host of the connection's
  source address, :func:`ppsp.core.hosts.host_key`), and
  :class:`~ppsp.peer.upload.fair.UploadLedger`, the bounded per-PeerID upload accounting.

Layer: sans-I/O (see ``ppsp.peer``): plain Python that is told what happened and answers with
decisions; ``ppsp.peer.net.endpoint`` applies them.
"""
