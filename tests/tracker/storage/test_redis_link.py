"""The pipelined connection of the Redis storage (``ppsp.tracker.net.redis_link``)."""

from __future__ import annotations

import asyncio
import signal

import pytest
from redis.asyncio.connection import ConnectionPool

from ppsp.errors import ServiceUnavailable
from ppsp.tracker.net.redis_link import RedisLink
from ppsp.tracker.net.redis_storage import RedisStorage
from tracker.storage.redis_server import redis_server
from tracker.storage.test_conformance import record


async def test_concurrent_commands_are_answered_in_order(redis_url: str) -> None:
    """Commands of concurrent callers share the connection; each gets its own answer."""
    link = RedisLink(ConnectionPool.from_url(redis_url), command_timeout=5.0)
    try:
        answers = await asyncio.gather(*(link.call("ECHO", f"m{i}") for i in range(500)))
        assert answers == [f"m{i}".encode() for i in range(500)]
        with pytest.raises(Exception, match="unknown command"):
            await link.call("NO-SUCH-COMMAND")
        assert await link.call("ECHO", "after") == b"after"  # an error reply breaks nothing
    finally:
        await link.close()


async def test_scripts_run_again_after_redis_restarts() -> None:
    """A restarted server has lost the scripts and the connection: both are made again."""
    with redis_server() as server:
        storage = RedisStorage(server.url)
        try:
            await storage.put_peer(record("p"))
            server.stop()
            with pytest.raises(ServiceUnavailable):
                await storage.put_peer(record("p"))
            server.start()
            await storage.put_peer(record("p"))  # reconnects, loads the script again
            assert await storage.get_peer("p") == record("p")
        finally:
            await storage.close()


async def test_a_redis_that_stops_answering_fails_the_waiting_commands() -> None:
    """Commands to a server that hangs fail after the command timeout (checked every
    second), and the link is usable again once the server answers."""
    with redis_server() as server:
        link = RedisLink(ConnectionPool.from_url(server.url), command_timeout=0.5)
        process = server._process
        assert process is not None
        try:
            assert await link.call("PING") == b"PONG"
            process.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(TimeoutError, match="did not answer"):
                    await asyncio.wait_for(link.call("PING"), 30.0)
            finally:
                process.send_signal(signal.SIGCONT)
            assert await link.call("PING") == b"PONG"
        finally:
            await link.close()
