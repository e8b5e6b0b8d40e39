"""Everything one gateway process needs, wired explicitly, and swapped on reload."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from milter.config import Config, load_config
from milter.intake.committer import Committer
from milter.intake.pipeline import Pipeline
from milter.kernel import ldapsync, metrics
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database
from milter.kernel.directory import Directory
from milter.kernel.dns import resolver_for
from policies.base import Services

log = logging.getLogger(__name__)

# Changing these needs a restart: they are bound when the process starts.
RESTART_KEYS = (
    ("smtp", "listen"),
    ("smtp", "workers"),
    ("console", "listen"),
    ("storage", "database"),
    ("storage", "blobs"),
)


class Runtime:
    def __init__(
        self, config: Config, *, directory: Directory | None = None, background_checkpoints: bool = False
    ) -> None:
        self.config = config
        self.directory = directory or ldapsync.load(config.settings.directory)
        self.database = Database(config.settings.storage.database, background_checkpoints=background_checkpoints)
        self.blobs = BlobStore(Path(config.settings.storage.blobs))
        self.io_pool = ThreadPoolExecutor(16, thread_name_prefix="io")
        self.scan_pool = ThreadPoolExecutor(config.settings.pipeline.scan_threads, thread_name_prefix="rule")
        self.metrics = metrics.get()
        self.committer = Committer(self.database)
        self.pipeline = self._pipeline(config, self.directory)

    def _pipeline(self, config: Config, directory: Directory) -> Pipeline:
        pipeline = Pipeline(
            config,
            directory,
            executor=self.scan_pool,
            services=Services(database=self.database, resolver=resolver_for(config.settings.dns)),
        )
        pipeline.observers.append(self.metrics.observe_rule)
        return pipeline

    def reload(self, path: str | Path | None = None) -> list[str]:
        """Load config and directory again; on any error keep running on the old ones (raises)."""
        config = load_config(path or self.config.path)
        directory = ldapsync.load(config.settings.directory, sync_if_missing=False)
        pipeline = self._pipeline(config, directory)
        warnings = [
            f"[{section}] {key} changed; it takes effect after a restart"
            for section, key in RESTART_KEYS
            if getattr(getattr(config.settings, section), key) != getattr(getattr(self.config.settings, section), key)
        ]
        # New messages see the new objects; messages in flight finish on the old ones.
        self.config, self.directory, self.pipeline = config, directory, pipeline
        return warnings

    def close(self) -> None:
        self.committer.close()
        self.scan_pool.shutdown(wait=False, cancel_futures=True)
        self.io_pool.shutdown(wait=True)
        self.database.dispose()
