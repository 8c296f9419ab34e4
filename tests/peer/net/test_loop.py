"""The session loop: it asks the policy, starts operations, and waits for the first of an
operation's end, its wake event and the policy's deadline; it never wakes on a period."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import pytest

from ppsp.peer.download.events import (
    Action,
    Done,
    Event,
    Failed,
    FetchChunk,
    FindAnswered,
    FindPeers,
    Seek,
)
from ppsp.peer.net.loop import SessionLoop


@dataclass
class Script:
    """A policy that returns planned actions and deadlines and records what it is told."""

    plan: list[list[Action]] = field(default_factory=list)
    deadlines: list[float | None] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def handle(self, event: Event, now: float) -> None:
        self.events.append(event)

    def poll(self, now: float) -> list[Action]:
        self.polls.append(now)
        return self.plan.pop(0) if self.plan else []

    def next_deadline(self) -> float | None:
        return self.deadlines.pop(0) if self.deadlines else None


async def test_the_loop_sleeps_until_the_deadline_and_not_before() -> None:
    start = time.monotonic()
    script = Script(plan=[[], [Done()]], deadlines=[start + 0.3])
    loop = SessionLoop(script, clock=time.monotonic, wake=asyncio.Event())
    end = await asyncio.wait_for(loop.run(lambda action: isinstance(action, Done)), 5)
    assert end == Done()
    assert len(script.polls) == 2  # once at the start, once at the deadline: no period
    assert script.polls[1] >= start + 0.3


async def test_an_operation_result_reaches_the_policy_before_it_is_asked_again() -> None:
    script = Script(plan=[[FindPeers()], [], [Done()]])
    wake = asyncio.Event()
    loop = SessionLoop(script, clock=time.monotonic, wake=wake)

    async def find() -> Event:
        await asyncio.sleep(0.05)
        return FindAnswered(("B",))

    def execute(action: Action) -> bool:
        if isinstance(action, FindPeers):
            loop.start(find(), lambda event: script.handle(event, 0.0))
        return isinstance(action, Done)

    async def nudge() -> None:
        await asyncio.sleep(0.2)
        wake.set()

    nudger = asyncio.ensure_future(nudge())
    assert await asyncio.wait_for(loop.run(execute), 5) == Done()
    await nudger
    # Polled at the start, after the FIND ended (with its answer told first), after the wake.
    assert len(script.polls) == 3
    assert script.events == [FindAnswered(("B",))]


async def test_a_cancelled_operation_is_stopped_and_its_result_dropped() -> None:
    script = Script(plan=[[FetchChunk("A", 1)]])
    wake = asyncio.Event()
    loop = SessionLoop(script, clock=time.monotonic, wake=wake)
    stopped = asyncio.Event()
    results: list[Event] = []

    async def transfer() -> Event:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()
        return Seek(0)

    def execute(action: Action) -> bool:
        if isinstance(action, FetchChunk):
            loop.start(transfer(), results.append, key=(action.peer, action.index))
        return isinstance(action, Done)

    runner = asyncio.ensure_future(loop.run(execute))
    await asyncio.sleep(0.05)
    assert loop.running == 1
    assert loop.cancel(("A", 1)) and not loop.cancel(("A", 1))
    await asyncio.wait_for(stopped.wait(), 5)
    script.plan.append([Done()])
    wake.set()
    assert await asyncio.wait_for(runner, 5) == Done()
    assert results == []


async def test_ending_cancels_what_still_runs() -> None:
    script = Script(plan=[[FindPeers()], [Failed("no")]], deadlines=[time.monotonic() + 0.05])
    loop = SessionLoop(script, clock=time.monotonic, wake=asyncio.Event())
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def execute(action: Action) -> bool:
        if isinstance(action, FindPeers):
            loop.start(forever(), lambda _: None)
        return isinstance(action, Failed)

    assert await loop.run(execute) == Failed("no")
    await asyncio.wait_for(cancelled.wait(), 5)
    assert loop.running == 0


class Fatal(Exception):
    pass


async def test_a_fatal_operation_error_ends_the_run_and_others_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(plan=[[FindPeers()], [FindPeers()]])
    loop = SessionLoop(script, clock=time.monotonic, wake=asyncio.Event(), fatal=(Fatal,))
    raised = iter([ValueError("a bug"), Fatal("the end")])

    async def failing() -> None:
        raise next(raised)

    def execute(action: Action) -> bool:
        loop.start(failing(), lambda _: None)
        return False

    with caplog.at_level(logging.WARNING), pytest.raises(Fatal):
        await asyncio.wait_for(loop.run(execute), 5)
    assert "a bug" in caplog.text
