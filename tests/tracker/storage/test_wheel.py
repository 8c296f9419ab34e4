"""The memory storage's timer wheel: lazy extension, batches, and a model of what is due."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.tracker.storage.wheel import TimeWheel


class Model:
    """Peers and deadlines as a dict, with a wheel filed the way the memory storage files it
    (a deadline that moves later is not filed again)."""

    def __init__(self) -> None:
        self.deadlines: dict[str, float] = {}
        self.wheel = TimeWheel()

    def set(self, peer: str, deadline: float) -> None:
        old = self.deadlines.get(peer)
        self.deadlines[peer] = deadline
        if old is None or deadline < old:
            self.wheel.add(peer, deadline)

    def due(self, now: float, limit: int | None = None) -> list[str]:
        out = self.wheel.due(now, self.deadlines.get, limit)
        for peer in out:
            del self.deadlines[peer]
        return out


def test_a_peer_that_reports_again_and_again_keeps_one_entry() -> None:
    model = Model()
    for peer in range(100):
        model.set(f"p{peer}", 100.0)
    for report in range(1, 50):  # each report moves every deadline 10 s later
        for peer in range(100):
            model.set(f"p{peer}", 100.0 + 10 * report)
    assert model.wheel.entries == 100
    assert model.due(500.0) == []  # nobody is due at the old deadlines
    assert model.wheel.entries == 100  # filed anew when their old seconds came
    assert sorted(model.due(590.0)) == sorted(f"p{peer}" for peer in range(100))
    assert model.wheel.entries == 0


def test_a_deadline_moved_earlier_is_due_then_and_only_once() -> None:
    model = Model()
    model.set("a", 100.0)
    model.set("a", 50.0)
    assert model.due(49.0) == [] and model.due(50.0) == ["a"]
    assert model.due(200.0) == [] and model.wheel.earliest(model.deadlines.get) is None


def test_expiry_takes_at_most_the_limit_and_the_rest_next_time() -> None:
    model = Model()
    for peer in range(25):
        model.set(f"p{peer:02}", 10.0 + peer / 100)
    first = model.due(20.0, limit=10)
    assert first == [f"p{peer:02}" for peer in range(10)]  # earliest first
    assert model.wheel.earliest(model.deadlines.get) == 10.1
    assert model.due(20.0, limit=10) == [f"p{peer:02}" for peer in range(10, 20)]
    assert model.due(20.0, limit=10) == [f"p{peer:02}" for peer in range(20, 25)]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 9), st.floats(0, 100, allow_nan=False)),
        st.tuples(st.just("due"), st.floats(0, 100, allow_nan=False), st.integers(1, 4)),
        st.tuples(st.just("earliest"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(operations)
def test_the_wheel_agrees_with_a_dict_of_deadlines(ops: list[tuple[str, float, float]]) -> None:
    model = Model()
    clock = 0.0
    for kind, a, b in ops:
        if kind == "set":
            # Deadlines are never in the past (a request sets now + a timeout).
            model.set(f"p{int(a)}", clock + b)
        elif kind == "due":
            clock = max(clock, a)
            expected = sorted((d, p) for p, d in model.deadlines.items() if d <= clock)[: int(b)]
            got = model.due(clock, limit=int(b))
            assert got == [p for _, p in expected]
        else:
            current = min(model.deadlines.values(), default=None)
            assert model.wheel.earliest(model.deadlines.get) == current
    # Everything left is due once the clock passes every deadline.
    left = sorted((d, p) for p, d in model.deadlines.items())
    assert model.due(1e9) == [p for _, p in left]
