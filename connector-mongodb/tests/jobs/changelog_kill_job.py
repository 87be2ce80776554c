"""The change-stream kill test's job: ``mongo_jobs.changelog_job`` until a stop file appears.

Usage: ``python changelog_kill_job.py URI DATABASE COLLECTION TARGET CHECKPOINT_DIR STOP_FILE``.
The source is unbounded: the process runs the job until ``STOP_FILE`` exists, then cancels it and
exits 0 (1 if the job ended by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from headwater.core import JobCancelledError, JobStatus
from mongo_jobs import changelog_job


async def main(argv: list[str]) -> int:
    uri, database, collection, target, checkpoint_dir, stop_file = argv
    env = changelog_job(
        checkpoint_dir=Path(checkpoint_dir), parallelism=3, uri=uri, database=database,
        collection=collection, target=target, rate="1500",
    )  # fmt: skip
    client = await env.execute_async("changelog under kills")
    ended = asyncio.ensure_future(client.wait())
    # JobClient.cancel before the job's first attempt exists is lost (a core gap): wait for it.
    while not Path(stop_file).exists() or client.status is not JobStatus.RUNNING:
        if ended.done():
            ended.result()
            return 1
        await asyncio.sleep(0.1)
    await client.cancel()
    with contextlib.suppress(JobCancelledError):
        await ended
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
