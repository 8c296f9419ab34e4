"""What a peer uploads to whom: upload slots and bytes shared per requesting host.

- :mod:`ppsp.peer.upload.fair`: :class:`~ppsp.peer.upload.fair.FairUploads`, which chunk
  request starts, waits its turn or is refused, host by host (the host of the connection's
  source address, :func:`ppsp.core.hosts.host_key`), and
  :class:`~ppsp.peer.upload.fair.UploadLedger`, the bounded per-PeerID upload accounting;
- :mod:`ppsp.peer.upload.pacing`: :class:`~ppsp.peer.upload.pacing.UploadPacer`, PPSPP's DATA
  under the same upload cap as HTTP's bodies, the channels' hosts in turn;
- :mod:`ppsp.peer.upload.attribution`: :class:`~ppsp.peer.upload.attribution.AddressAttribution`,
  the PeerIDs a tracker listed at the UDP addresses PPSPP uploads went to.

Layer: sans-I/O (see ``ppsp.peer``): plain Python that is told what happened and answers with
decisions; ``ppsp.peer.net.endpoint`` applies them.
"""
