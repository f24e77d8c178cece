"""A drain with a progress bar: what `checkin greet` and `checkin broadcast` show while they send."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot.runtime import Runtime
from bot.stack import Stack
from content.catalog import text
from handlers import greetings
from storage.db import session_scope


async def drain_with_progress(rt: Runtime, key: str, total: int, out: Console) -> set[str]:
    """Drain until nothing is due, showing this send's progress; the channels that were configured."""
    stack = Stack(rt)
    await stack.start(receive=False)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=out, transient=False) as bar:
            task = bar.add_task(text(rt.settings.language, "office.bulk.progress"), total=total)
            while True:
                report = await stack.outbox.drain(rt.clock.now(), max_batches=1)
                with session_scope(rt.engine) as session:
                    counts = greetings.progress(session, key)
                bar.update(task, completed=sum(n for s, n in counts.items() if s not in ("queued", "sending")))
                if report.claimed == 0:
                    break
    finally:
        await stack.stop()
    return set(stack.channels)
