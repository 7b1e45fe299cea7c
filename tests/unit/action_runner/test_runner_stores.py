"""The runner's state is on disk by default (RocksDB through rocksdict, under data_dir,
with a bounded block cache) and rebuilt from changelog topics partitioned like its inputs."""

from __future__ import annotations

from pathlib import Path

from services.action_runner.app import changelog, own_topics, store_factory
from services.action_runner.settings import RunnerSettings
from services.action_runner.stores import STORES
from services.common.state_store import MemoryStore, RocksStore


def test_the_default_store_is_rocksdb_on_disk_with_a_bounded_cache(tmp_path: Path) -> None:
    settings = RunnerSettings(topic_prefix="unit.", data_dir=str(tmp_path))
    assert settings.action_runner_store == "rocksdb://"
    assert settings.action_runner_rocksdb_cache_mb == 16
    store = store_factory(settings)("consent-ledger", 2)
    try:
        assert isinstance(store, RocksStore)
        assert store.path.is_relative_to(tmp_path)
        assert store.path.exists()
    finally:
        store.close()


def test_memory_can_still_be_chosen(tmp_path: Path) -> None:
    settings = RunnerSettings(
        topic_prefix="unit.", data_dir=str(tmp_path), action_runner_store="memory://"
    )
    assert isinstance(store_factory(settings)("sent-sms", 0), MemoryStore)


def test_each_store_has_a_compacted_changelog_partitioned_like_the_inputs() -> None:
    settings = RunnerSettings(topic_prefix="unit.")
    topics = {t.name: t for t in own_topics(settings, 6)}
    for store in STORES:
        topic = topics[changelog(settings, store)]
        assert topic.num_partitions == 6
        assert topic.topic_configs == {"cleanup.policy": "compact"}
    for name in ("phone-index", "consent-commands", "phone-reindex"):
        internal = topics[f"unit.action-runner-{name}"]
        assert internal.num_partitions == 6
        assert internal.topic_configs["cleanup.policy"] == "delete"
