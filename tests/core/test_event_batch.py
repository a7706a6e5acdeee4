"""EventBatch: a Sequence[Event] held column by column must behave like a list of Events."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longline.core.keys import EventBatch
from longline.core.model import Event

E1 = Event("k1", '{"id":1}', "c1", 1.0, None)
E2 = Event("k2", '{"id":2}', None, 2.0, "tick")
E3 = Event("k3", "plain", "c3", 3.5, "message")
E4 = Event("k4", "", None, 4.0, None)
ALL = [E1, E2, E3, E4]

events = st.builds(
    Event,
    st.text(max_size=4),
    st.text(max_size=6),
    st.none() | st.text(max_size=3),
    st.floats(0, 1e9, allow_nan=False),
    st.none() | st.text(max_size=3),
)


def test_empty_batch() -> None:
    batch = EventBatch()
    assert len(batch) == 0
    assert list(batch) == []
    assert not batch
    assert batch == []
    with pytest.raises(IndexError):
        batch[0]


def test_of_holds_events_column_by_column() -> None:
    batch = EventBatch.of(ALL)
    assert len(batch) == 4
    assert batch.keys == ["k1", "k2", "k3", "k4"]
    assert batch.payloads == ['{"id":1}', '{"id":2}', "plain", ""]
    assert batch.cursors == ["c1", None, "c3", None]
    assert batch.received == [1.0, 2.0, 3.5, 4.0]
    assert batch.types == [None, "tick", "message", None]


def test_of_accepts_any_iterable() -> None:
    assert EventBatch.of(iter(ALL)) == ALL
    assert EventBatch.of(ev for ev in ALL[:2]) == [E1, E2]
    assert EventBatch.of(EventBatch.of(ALL)) == ALL


def test_append_adds_at_the_end() -> None:
    batch = EventBatch()
    batch.append(E2)
    batch.append(E1)
    assert list(batch) == [E2, E1]
    assert batch.keys == ["k2", "k1"]
    assert batch.types == ["tick", None]


def test_columns_given_to_init() -> None:
    batch = EventBatch(["a", "b"], ["p", "q"], [None, "c"], [1.0, 2.0], ["t", None])
    assert list(batch) == [Event("a", "p", None, 1.0, "t"), Event("b", "q", "c", 2.0, None)]


def test_indexing_returns_events() -> None:
    batch = EventBatch.of(ALL)
    assert batch[0] == E1
    assert batch[3] == E4
    assert batch[-1] == E4
    assert batch[-4] == E1
    assert type(batch[1]) is Event
    with pytest.raises(IndexError):
        batch[4]
    with pytest.raises(IndexError):
        batch[-5]


def test_slicing_returns_an_independent_batch() -> None:
    batch = EventBatch.of(ALL)
    head = batch[1:3]
    assert type(head) is EventBatch
    assert head == [E2, E3]
    assert batch[::2] == [E1, E3]
    assert batch[::-1] == [E4, E3, E2, E1]
    assert batch[5:] == []
    head.append(E1)
    assert batch == ALL  # the slice copied its columns
    assert head == [E2, E3, E1]


def test_iteration_and_sequence_mixins() -> None:
    batch = EventBatch.of(ALL)
    assert [ev.key for ev in batch] == ["k1", "k2", "k3", "k4"]
    assert list(reversed(batch)) == [E4, E3, E2, E1]
    assert E3 in batch
    assert Event("k3", "plain", "c3", 3.5, None) not in batch
    assert batch.index(E2) == 1
    assert batch.count(E1) == 1
    assert isinstance(batch, Sequence)


def test_take_removes_the_head_in_place() -> None:
    batch = EventBatch.of(ALL)
    head = batch.take(3)
    assert type(head) is EventBatch
    assert head == [E1, E2, E3]
    assert batch == [E4]
    assert batch.keys == ["k4"]
    assert batch.received == [4.0]
    assert batch.take(1) == [E4]
    assert batch == []
    assert len(batch) == 0


def test_take_edges() -> None:
    batch = EventBatch.of(ALL)
    assert batch.take(0) == []
    assert batch == ALL
    assert batch.take(10) == ALL
    assert batch == []
    assert batch.take(2) == []


def test_take_result_is_independent_of_the_rest() -> None:
    batch = EventBatch.of(ALL)
    head = batch.take(2)
    batch.append(E1)
    head.append(E4)
    assert head == [E1, E2, E4]
    assert batch == [E3, E4, E1]


def test_equality_with_lists_tuples_and_batches() -> None:
    batch = EventBatch.of([E1, E2])
    assert batch == [E1, E2]
    assert [E1, E2] == batch  # noqa: SIM300 (the reflected __eq__)
    assert batch == (E1, E2)
    assert batch == EventBatch.of([E1, E2])
    assert batch != [E2, E1]
    assert batch != [E1]
    assert batch != [E1, E2, E3]
    assert batch != [E1, Event("k2", '{"id":2}', None, 2.0, None)]  # type differs
    assert batch != ["k1", "k2"]
    assert (batch == 3) is False
    assert batch.__eq__(3) is NotImplemented
    assert batch.__eq__(None) is NotImplemented


def test_unhashable_like_a_list() -> None:
    with pytest.raises(TypeError):
        hash(EventBatch())


def test_repr_lists_events() -> None:
    assert repr(EventBatch.of([E1])) == f"EventBatch([{E1!r}])"
    assert repr(EventBatch()) == "EventBatch([])"


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=12), st.integers(-15, 15), st.integers(-15, 15), st.data())
def test_behaves_like_a_list(evs: list[Event], start: int, stop: int, data: st.DataObject) -> None:
    batch = EventBatch.of(evs)
    assert len(batch) == len(evs)
    assert list(batch) == evs
    assert batch == evs
    assert batch[start:stop] == evs[start:stop]
    step = data.draw(st.sampled_from([1, 2, 3, -1, -2]))
    assert batch[start:stop:step] == evs[start:stop:step]
    for i in range(-len(evs), len(evs)):
        assert batch[i] == evs[i]
    n = data.draw(st.integers(0, len(evs) + 2))
    head = batch.take(n)
    assert head == evs[:n]
    assert batch == evs[n:]
    assert len(batch.keys) == len(batch.payloads) == len(batch.cursors) == len(evs[n:])
    assert len(batch.received) == len(batch.types) == len(evs[n:])
    more = data.draw(st.lists(events, max_size=3))
    for ev in more:
        batch.append(ev)
    assert batch == evs[n:] + more
