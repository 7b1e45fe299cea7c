"""The runner's tables are on disk by default (RocksDB through rocksdict), with a bounded
block cache: their memory does not grow with the contacts and numbers they hold."""

from __future__ import annotations

from pathlib import Path

from services.action_runner.app import ActionRunner
from services.action_runner.settings import RunnerSettings
from services.common.catalog import Catalog


def test_the_default_store_is_rocksdb_on_disk_with_a_bounded_cache(tmp_path: Path) -> None:
    settings = RunnerSettings(topic_prefix="unit.", data_dir=str(tmp_path))
    assert settings.action_runner_store == "rocksdb://"
    runner = ActionRunner(settings, 3, Catalog())
    tables = list(runner.app.tables.values())
    assert {t.name for t in tables} >= {"consent-ledger", "answered-actions", "number-index"}
    for table in tables:
        store = table.data
        assert type(store).__module__ == "faust.stores.rocksdb", table.name
        assert store.use_rocksdict, table.name
        assert store.rocksdb_options.block_cache_size == 16 << 20, table.name
        assert Path(store.path).is_relative_to(tmp_path)


def test_memory_can_still_be_chosen(tmp_path: Path) -> None:
    settings = RunnerSettings(
        topic_prefix="unit.", data_dir=str(tmp_path), action_runner_store="memory://"
    )
    runner = ActionRunner(settings, 3, Catalog())
    for table in runner.app.tables.values():
        assert type(table.data).__module__ == "faust.stores.memory"
