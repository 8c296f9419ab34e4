"""Attackers for the lab: hostile swarm members as processes of their own, on the real wire.

``python -m ppsp.lab.attack KIND --tracker URL --swarm ID --ip 127.x.y.z [--kind vod|live]
[--lifetime S] [--report FILE]`` runs one attacker of ``KIND`` (:data:`KINDS`); it prints one
line ``attack KIND ready on IP:PORT`` once it has joined the swarm, attacks for at most
``--lifetime`` seconds (or until SIGINT/SIGTERM) and writes what it did as JSON to ``--report``.
docs/SECURITY.md ("Attacks in the lab") describes each kind.

- :mod:`~ppsp.lab.attack.tarpit`: a SEED of the highest priority that never answers;
- :mod:`~ppsp.lab.attack.forged_push`: empty-map PUSHes in members' names and made-up ones;
- :mod:`~ppsp.lab.attack.corrupt`: a member that claims every chunk and serves damaged ones;
- :mod:`~ppsp.lab.attack.eclipse`: as many tarpit PeerIDs from one host as the tracker takes;
- :mod:`~ppsp.lab.attack.flood`: pulls chunks from every member over many connections.

The shared parts (tracker and member look-ups, the fake member's HTTP endpoint) live in
:mod:`~ppsp.lab.attack.common` and :mod:`~ppsp.lab.attack.member`.

Layer: application, as :mod:`ppsp.lab`: may import anything of ppsp; only the lab and its
command line import it.
"""

from __future__ import annotations

KINDS = ("tarpit", "forged-push", "corrupt", "eclipse", "flood")
"""Every attack kind, in the order the lab plans their addresses."""

READY = "attack {kind} ready on {ip}:{port}"
"""The line an attacker prints on stdout once it has joined the swarm."""
