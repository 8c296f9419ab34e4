"""When a grown state is frozen out of the garbage collector's sight (sans-I/O decision)."""

from __future__ import annotations

import pytest

from ppsp.process.tuning import FREEZE_STEP, FreezeTrigger


def test_freezes_each_time_the_state_grows_by_a_step() -> None:
    trigger = FreezeTrigger(step=1000)
    assert not trigger.due(0)
    assert not trigger.due(999)
    assert trigger.due(1000)
    assert trigger.frozen_at == 1000
    assert not trigger.due(1000)  # a yes counts as done
    assert not trigger.due(1999)
    assert trigger.due(2500)
    assert not trigger.due(3499)  # the next step counts from the count at the freeze
    assert trigger.due(3500)


def test_the_mark_never_goes_down_so_churn_does_not_freeze_again() -> None:
    # Peers expiring and others registering at about the same size never freeze again: each
    # freeze may keep the cyclic garbage alive at that moment, so their number stays bounded.
    trigger = FreezeTrigger(step=100)
    assert trigger.due(500)
    freezes = sum(trigger.due(peers) for peers in [0, 300, 599, 10, 550, 200, 599] * 20)
    assert freezes == 0
    assert trigger.due(600)


def test_a_small_state_is_never_frozen_by_default() -> None:
    trigger = FreezeTrigger()
    assert not trigger.due(FREEZE_STEP - 1)
    assert trigger.due(FREEZE_STEP)


def test_looks_are_spaced_by_the_interval() -> None:
    trigger = FreezeTrigger(interval=5.0)
    assert trigger.should_look(100.0)
    assert not trigger.should_look(100.0)
    assert not trigger.should_look(104.9)
    assert trigger.should_look(105.0)
    assert not trigger.should_look(109.0)
    assert trigger.should_look(1000.0)


def test_a_step_below_one_peer_is_refused() -> None:
    with pytest.raises(ValueError):
        FreezeTrigger(step=0)
