"""The multi-process tracker's parent side: what it refuses, and the socket it shares."""

from __future__ import annotations

import socket

import pytest

from ppsp.errors import ServiceUnavailable
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.net.workers import listening_socket, run_tracker_workers, socket_url
from tracker.storage.redis_server import free_port


@pytest.mark.parametrize(
    ("workers", "storage_url", "reason"),
    [
        (1, "redis://127.0.0.1:6379/0", "workers >= 2"),
        (0, "redis://127.0.0.1:6379/0", "workers >= 2"),
        (2, "memory", "only through Redis"),
        (4, "", "only through Redis"),
    ],
)
def test_workers_need_two_or_more_and_a_shared_storage(
    workers: int, storage_url: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        run_tracker_workers("127.0.0.1", 0, TrackerConfig(), storage_url, workers=workers)


def test_the_shared_socket_listens_and_names_its_real_port() -> None:
    with listening_socket("127.0.0.1", 0) as sock:
        url = socket_url(sock)
        port = sock.getsockname()[1]
        assert port != 0 and url == f"http://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted into the backlog: the socket listens


def test_an_ipv6_socket_url_has_brackets() -> None:
    try:
        sock = listening_socket("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with sock:
        assert socket_url(sock) == f"http://[::1]:{sock.getsockname()[1]}"


def test_an_unusable_storage_is_refused_before_the_port_is_bound() -> None:
    # The port is taken: had the parent bound it first, this would be an OSError.
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ServiceUnavailable, match="storage unavailable"):
            run_tracker_workers("127.0.0.1", port, TrackerConfig(), closed, workers=2)
        with pytest.raises(ValueError, match="invalid storage URL"):
            run_tracker_workers(
                "127.0.0.1", port, TrackerConfig(), "redis://127.0.0.1:port/0", workers=2
            )


def test_a_taken_port_is_refused_after_the_storage_check(redis_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(OSError):
            run_tracker_workers("127.0.0.1", port, TrackerConfig(), redis_url, workers=2)


def test_a_cluster_is_a_shared_storage_checked_before_the_port_is_bound() -> None:
    # Accepted as shared (not the ValueError above), then checked: no node answers here.
    nodes = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ServiceUnavailable, match="storage unavailable"):
            run_tracker_workers(
                "127.0.0.1", port, TrackerConfig(), f"redis+cluster://{nodes}", workers=2
            )
