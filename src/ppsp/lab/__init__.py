"""Swarm lab: real ``ppsp`` processes on loopback, measured against the fluid-model bound.

``ppsp lab vod`` (:func:`ppsp.lab.runner.run_vod_lab`) runs a tracker, a rate-capped source and
N peers, a client-server baseline, and writes report.json, report.md and PNG plots.
:mod:`ppsp.lab.report` holds the bookkeeping (pure functions), :mod:`ppsp.lab.plots` the plots.
"""
