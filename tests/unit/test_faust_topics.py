from __future__ import annotations

import faust

from services.common.faust_topics import app_topics


def test_changelogs_and_internal_topics_are_declared_with_their_policies() -> None:
    app = faust.App(
        "t-svc",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        topic_partitions=4,
        autodiscover=False,
    )
    app.Table("ledger", partitions=4)
    internal = app.topic("t-svc-index", partitions=4, internal=True, retention=3600)
    source = app.topic("t.contact-changes")

    @app.agent(internal)
    async def index(stream):  # type: ignore[no-untyped-def]
        async for _ in stream:
            pass

    @app.agent(source)
    async def read(stream):  # type: ignore[no-untyped-def]
        async for _ in stream:
            pass

    topics = {t.name: t for t in app_topics(app)}
    assert set(topics) == {"t-svc-ledger-changelog", "t-svc-index"}  # not the contract topic
    assert topics["t-svc-ledger-changelog"].topic_configs == {"cleanup.policy": "compact"}
    assert topics["t-svc-index"].topic_configs == {
        "cleanup.policy": "delete",
        "retention.ms": "3600000",
    }
    assert {t.num_partitions for t in topics.values()} == {4}
