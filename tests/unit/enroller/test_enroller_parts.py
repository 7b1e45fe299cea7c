"""State encoding, the timer queue, the property index, turn-on marks, definitions snapshots."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.definitions import DefinitionApplied
from services.enroller.existing import turned_on
from services.enroller.state import (
    ContactState,
    Enrollment,
    Status,
    change_digest,
    decode_state,
    encode_state,
    split_key,
)
from services.enroller.timers import TimerQueue
from tests.unit.enroller.builders import definitions, index_of, workflow

props = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.floats(allow_nan=False)),
    max_size=6,
)
enrollments = st.builds(
    Enrollment,
    sequence=st.integers(1, 9),
    step=st.one_of(st.integers(0, 9), st.text(alphabet="abc-0", min_size=1, max_size=8)),
    status=st.sampled_from(list(Status)),
    attempt=st.integers(1, 5),
    due=st.one_of(st.none(), st.floats(0, 2e9)),
    done=st.lists(st.text(alphabet="abc-0", min_size=1, max_size=8), max_size=4),
)
states = st.builds(
    ContactState,
    properties=props,
    seen=st.lists(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32), max_size=5),
    deleted=st.booleans(),
    enrollments=st.dictionaries(st.text(min_size=1, max_size=5), enrollments, max_size=3),
    sequences=st.dictionaries(st.text(min_size=1, max_size=5), st.integers(1, 9), max_size=3),
    stamps=st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 2**53), max_size=4),
    floor=st.integers(0, 2**53),
)


@given(state=states)
def test_state_round_trips_through_its_encoding(state: ContactState) -> None:
    assert decode_state(encode_state(state)) == state


def test_remember_keeps_a_bounded_window_of_change_ids() -> None:
    state = ContactState()
    assert state.remember("a", window=2)
    assert not state.remember("a", window=2)
    assert state.remember("b", window=2)
    assert state.remember("c", window=2)
    assert state.seen == [change_digest("b"), change_digest("c")]
    assert state.remember("a", window=2)  # fell out of the window


def test_change_ids_of_any_length_take_the_same_room() -> None:
    long_ids = [f"crm-export-2026-11-27-contact-1001-change-{n:04d}" for n in range(50)]
    digests = {change_digest(i) for i in long_ids}
    assert len(digests) == 50  # a shared prefix does not make them collide
    assert {len(d) for d in digests} == {16}


def test_split_key() -> None:
    assert split_key("acme:1001") == ("acme", "1001")
    for bad in ("acme", ":1", "acme:", "a:b:c"):
        try:
            split_key(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_timer_queue_pops_each_due_key_once_in_order() -> None:
    timers = TimerQueue()
    timers.schedule("a", 30)
    timers.schedule("b", 10)
    timers.schedule("a", 20)  # earlier: replaces
    timers.schedule("b", 40)  # later than queued: the earlier entry stays
    timers.schedule("c", None)
    assert len(timers) == 2
    assert timers.next_due() == 10
    assert timers.pop_due(5) == []
    assert timers.pop_due(25) == ["b", "a"]
    assert timers.pop_due(100) == []
    assert len(timers) == 0


@given(dues=st.lists(st.tuples(st.sampled_from("abcde"), st.floats(0, 100)), max_size=30))
def test_timer_queue_returns_every_key_by_its_earliest_due(dues: list[tuple[str, float]]) -> None:
    timers = TimerQueue()
    earliest: dict[str, float] = {}
    for key, due in dues:
        timers.schedule(key, due)
        earliest[key] = min(due, earliest.get(key, due))
    popped = timers.pop_due(50)
    assert sorted(popped) == sorted(k for k, d in earliest.items() if d <= 50)
    assert sorted(popped + timers.pop_due(100)) == sorted(earliest)


def test_index_returns_only_workflows_that_mention_a_changed_property() -> None:
    stage = workflow("stage-flow")
    score = workflow(
        "score-flow",
        criteria=[[{"property": "score", "operator": "gt", "value": 5}]],
        suppression=[[{"property": "vip", "operator": "is_known"}]],
        reenroll_on=["last_order"],
    )
    blank = workflow("blank-flow", criteria=[[{"property": "email", "operator": "is_unknown"}]])
    index = index_of(stage, score, blank)
    ids = lambda found: sorted(w.workflow_id for w in found)  # noqa: E731
    assert ids(index.candidates("acme", ["firstname"])) == []
    assert ids(index.candidates("acme", ["lifecyclestage"])) == ["stage-flow"]
    assert ids(index.candidates("acme", ["vip", "last_order"])) == ["score-flow"]
    assert ids(index.candidates("acme", ["email"])) == ["blank-flow"]
    assert ids(index.candidates("acme", ["firstname"], created=True)) == ["blank-flow"]
    assert index.candidates("other-account", ["lifecyclestage"]) == []


def test_definitions_snapshot_follows_every_applied_revision() -> None:
    held = definitions(workflow(enabled=False))
    first = held.index()
    assert held.index() is first  # unchanged: no rebuild
    held.apply(DefinitionApplied(document=workflow(enabled=True), revision=2))
    second = held.index()
    compiled = second.workflow("acme", "welcome-flow")
    assert compiled is not None
    assert (compiled.enabled, compiled.revision) == (True, 2)
    assert second.time_zone("acme") == "Europe/Helsinki"
    deal = workflow("deal-flow").model_copy(deep=True)
    deal_doc = deal.model_copy(
        update={"spec": deal.spec.model_copy(update={"object_type": "deal"})}
    )
    held.apply(DefinitionApplied(document=deal_doc))
    assert held.index().workflow("acme", "deal-flow") is None  # contacts only


def test_turned_on_scans_a_workflow_once_per_turn_on() -> None:
    held = definitions(workflow(enroll_existing=True, enabled=False))
    scan, marks = turned_on(held.index(), {})
    assert scan == []
    assert marks == {"acme/welcome-flow": False}
    held.apply(DefinitionApplied(document=workflow(enroll_existing=True), revision=2))
    scan, marks = turned_on(held.index(), marks)
    assert [w.workflow_id for w in scan] == ["welcome-flow"]
    scan, marks = turned_on(held.index(), marks)  # an edit while on: no second scan
    assert scan == []
    held.apply(DefinitionApplied(document=workflow(enroll_existing=True), revision=3))
    assert turned_on(held.index(), marks)[0] == []


PROPS = ["stage", "tier"]
WORDS = ["a", "B", " b ", "10", "true"]
filters = st.builds(
    lambda prop, op, words, flag: (
        {"property": prop, "operator": op, "values": words}
        if op in ("is_any_of", "is_none_of")
        else {"property": prop, "operator": op}
        if op == "is_known"
        else {"property": prop, "operator": op, "value": flag if op == "eq" and flag else words[0]}
    ),
    st.sampled_from(PROPS),
    st.sampled_from(["eq", "is_any_of", "neq", "is_none_of", "is_known", "contains"]),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=2),
    st.sampled_from([None, None, True, 10]),
)
criteria_lists = st.lists(st.lists(filters, min_size=1, max_size=3), min_size=1, max_size=2)
contacts = st.dictionaries(
    st.sampled_from(PROPS),
    st.one_of(st.sampled_from([*WORDS, "", "zz"]), st.just(True)),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(criteria=st.lists(criteria_lists, min_size=1, max_size=4), contact=contacts)
def test_index_pruning_never_drops_a_workflow_that_matches(
    criteria: list[list[list[dict[str, object]]]], contact: dict[str, object]
) -> None:
    flows = [workflow(f"wf-{n}", criteria=c) for n, c in enumerate(criteria)]  # type: ignore[arg-type]
    index = index_of(*flows)
    matching = {w.workflow_id for w in index.workflows_of("acme") if w.matches(contact)}
    found = index.candidates("acme", PROPS, after=contact)  # type: ignore[arg-type]
    assert matching <= {w.workflow_id for w in found}


def test_index_keeps_groups_with_two_requirements_on_one_property() -> None:
    same = [[{"property": "stage", "operator": "eq", "value": "a"},
             {"property": "stage", "operator": "is_any_of", "values": ["a", "b"]}]]  # fmt: skip
    two = [[{"property": "stage", "operator": "eq", "value": "a"},
            {"property": "tier", "operator": "is_any_of", "values": ["Gold", "x"]}]]  # fmt: skip
    index = index_of(workflow("same", criteria=same), workflow("two", criteria=two))
    found = index.candidates("acme", ["stage"], after={"stage": "a", "tier": " gold"})
    assert [w.workflow_id for w in found] == ["same", "two"]
    assert (
        index.candidates("acme", ["stage"], after={"stage": "a", "tier": "silver"})[0].workflow_id
        == "same"
    )


def test_property_stamps_round_trip_compactly() -> None:
    state = ContactState(
        properties={"a": 1, "b": "x", "legacy": True},
        stamps={"a": 5_000_000, "b": 7_000_000, "gone": 6_000_000},  # "legacy": no stamp yet
    )
    raw = encode_state(state)
    assert b'"T":7000000,"t":[2000000,0,null],"c":{"gone":1000000}' in raw
    decoded = decode_state(raw)
    assert decoded is not None
    assert decoded.stamps == state.stamps
    assert decoded == state
