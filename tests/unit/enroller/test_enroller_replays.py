"""Replayed and out-of-order contact changes: ordered per property by ``occurred_at``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.contacts import ContactChange
from schemas.definitions import DefinitionApplied
from services.enroller.engine import InvalidRecord
from tests.unit.enroller.builders import definitions, result, workflow
from tests.unit.enroller.harness import T0, Harness

FLOW = "welcome-flow"
SEND = [{"type": "send_sms", "message": "welcome"}]


def at(seconds: float, *, deleted: bool = False, **properties: Any) -> ContactChange:
    """A change that happened ``seconds`` after T0, with an event id of its own."""
    return ContactChange(
        account_id="acme",
        contact_id="1001",
        properties=properties,
        deleted=deleted,
        occurred_at=datetime.fromtimestamp(T0 + seconds, UTC),
    )


def harness(**kwargs: Any) -> Harness:
    return Harness(definitions(workflow(actions=SEND, **kwargs)))


def test_an_older_change_arriving_later_regresses_nothing_and_enrolls_no_one() -> None:
    h = harness(reenroll_on=["lifecyclestage"])
    h.change(at(1, lifecyclestage="customer", firstname="Aino"))
    h.change(at(2, lifecyclestage="lead"))
    h.change(at(3, firstname="Aino-Maria"))
    enrolled = list(h.decisions())
    # The first change again, as a new record (a replay after the de-duplication window).
    effects = h.change(at(1, lifecyclestage="customer", firstname="Aino"))
    assert h.decisions() == enrolled == [(FLOW, "enrolled", "criteria_met")]
    assert effects.commands == []
    state = h.state()
    assert state is not None
    assert state.properties == {"lifecyclestage": "lead", "firstname": "Aino-Maria"}
    assert [n.fields["properties"] for n in effects.notes if n.event == "properties_stale"] == [
        ["lifecyclestage", "firstname"]
    ]


def test_a_change_applies_the_properties_it_is_newest_for_and_only_those() -> None:
    h = harness()
    h.change(at(5, firstname="New"))
    h.change(at(3, firstname="Old", lastname="Kept"))  # late: firstname is newer already
    state = h.state()
    assert state is not None
    assert state.properties == {"firstname": "New", "lastname": "Kept"}


def test_a_late_clear_does_not_remove_a_newer_value_and_an_old_value_does_not_undo_a_clear() -> (
    None
):
    h = harness()
    h.change(at(5, phone="+358401234567"))
    h.change(at(4, phone=None))
    h.change(at(7, email=None))
    h.change(at(6, email="old@example.com"))
    state = h.state()
    assert state is not None
    assert state.properties == {"phone": "+358401234567"}


def test_a_late_change_does_not_bring_a_deleted_contact_back_nor_a_late_deletion_wipe_it() -> None:
    h = harness()
    h.change(at(1, lifecyclestage="customer"))
    h.change(at(5, deleted=True))
    h.change(at(2, lifecyclestage="customer"))
    state = h.state()
    assert state is not None
    assert (state.deleted, state.properties) == (True, {})
    assert h.decisions() == [
        (FLOW, "enrolled", "criteria_met"),
        (FLOW, "unenrolled", "contact_deleted"),
    ]

    h.change(at(6, firstname="Back"))  # newer than the deletion: the contact exists again
    h.change(at(4, deleted=True))  # an old deletion
    state = h.state()
    assert state is not None
    assert (state.deleted, state.properties) == (False, {"firstname": "Back"})


def test_a_change_stamped_far_in_the_future_is_refused() -> None:
    h = harness()
    with pytest.raises(InvalidRecord, match="in the future"):
        h.change(at(2 * 3600, firstname="Later"))
    h.change(at(600, firstname="Skewed"))  # a little skew is fine
    state = h.state()
    assert state is not None
    assert state.properties == {"firstname": "Skewed"}


CHANGES = st.lists(
    st.tuples(
        st.integers(0, 6),  # seconds after T0: ties happen
        st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.one_of(st.none(), st.sampled_from(["x", "y"]), st.integers(0, 2), st.booleans()),
            min_size=1,
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(changes=CHANGES, order=st.randoms(use_true_random=False))
def test_any_arrival_order_ends_in_the_same_properties(changes: Any, order: Any) -> None:
    records = [at(seconds, **props) for seconds, props in changes]
    shuffled = list(records)
    order.shuffle(shuffled)
    results = []
    for sequence in (records, shuffled):
        h = harness()
        for record in sequence:
            h.change(record)
        state = h.state()
        assert state is not None
        results.append(state.properties)
    assert results[0] == results[1]
    # And each property holds a value written by its latest writers.
    for name, value in results[0].items():
        latest = max(s for s, props in changes if name in props)
        assert value in [props[name] for s, props in changes if s == latest and name in props]


def test_a_result_whose_write_is_stamped_far_ahead_still_moves_the_enrollment_on() -> None:
    h = harness()
    h.definitions.apply(
        DefinitionApplied(
            document=workflow(
                actions=[{"type": "set_marketing_contact_status", "marketing": True}, *SEND]
            ),
            revision=2,
        )
    )
    h.change(at(1, lifecyclestage="customer"))
    write = at(3 * 3600, hs_marketable_status="true")
    effects = h.result(result(h.commands[-1], contact_change=write))
    assert [c.action.type for c in effects.commands] == ["send_sms"]
    assert [n.event for n in effects.notes] == ["property_write_refused"]
    state = h.state()
    assert state is not None
    assert "hs_marketable_status" not in state.properties
