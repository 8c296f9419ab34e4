"""The RFC 7574 peer protocol (PPSPP) engine, sans-I/O: serving content, and downloading it
over one channel.

Layer: sans-I/O.  May import ``ppsp.wire``, ``ppsp.codecs``, ``ppsp.core`` and the rest of
``ppsp.peer`` (not ``ppsp.peer.net``); no sockets, no event loop, no clock: the time is an
argument (``now``, seconds of a monotonic clock) and the engine answers with datagrams to send
(address, bytes) and its next deadline.  ``peer/net/ppspp_udp.py`` runs the seeder on a UDP socket.

* :mod:`.content` -- the content served: its Merkle tree, peaks, uncle hashes, chunk bytes;
* :mod:`.partial` -- content served while only part of it is held, and its subtree hashes;
* :mod:`.ledbat` -- the sending pace: a window of DATA in flight (LEDBAT, RFC 6817);
* :mod:`.sending` -- what the uploading engines share: the flight, ACKs and losses under that
  window, and the upload cap's turns;
* :mod:`.channel` -- one channel's state and its state table;
* :mod:`.admission` -- the channels a serving engine keeps per host, and whom a new one evicts;
* :mod:`.opening` -- which opening handshakes the seeder answers, and its HANDSHAKE;
* :mod:`.seeder` -- the engine: handshakes, channels per host, requests, DATA, timers;
* :mod:`.leecher` -- a download from one peer: requests, verification up to the root, ACKs;
* :mod:`.client` -- a channel fetching the chunks a swarm session asks for, verified likewise;
* :mod:`.live` -- live streams: one munro per live chunk, its tree and its signature;
* :mod:`.live_server` -- serving a live stream under signed munros (the source's or relayed);
* :mod:`.live_config` -- the live server's bounds and timers;
* :mod:`.live_receiver` -- a channel fetching live chunks, each checked against a signed munro
  (the live engines' ``now`` is Unix time, live's clock).

``peer/net/ppspp_get.py`` runs the leecher, ``peer/net/ppspp_transport.py`` the client,
``peer/net/ppspp_serving.py`` the seeder on a downloading peer's socket,
``peer/net/ppspp_live.py`` the live engines.
"""

from ppsp.peer.ppspp.content import BytesChunks, ChunkReader, SeededContent
from ppsp.peer.ppspp.seeder import Seeder, SeederConfig

__all__ = ["BytesChunks", "ChunkReader", "SeededContent", "Seeder", "SeederConfig"]
