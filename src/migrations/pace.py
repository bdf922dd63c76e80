# rehearse's pacing of a migration tool run by one of its Python helpers
# (Alembic's, Django's): rehearse puts this before the helper. Before each
# migration the helper waits for rehearse's `go <id>` on stdin (rehearse starts
# observing in between), and every time it reports is on Pace's clock, which
# leaves those pauses out: no migration, statement or lock hold counts the time
# rehearse spent observing between two.
import sys as _pace_sys
import time as _pace_time


class Stopped(Exception):
    """rehearse said something other than "go" (or closed stdin): the run ends here."""


class Pace:
    """rehearse's pauses between migrations, and a clock that leaves them out."""

    def __init__(self):
        self.paused = 0.0

    def clock(self):
        return _pace_time.perf_counter() - self.paused

    def wait_for_go(self, migration):
        began = _pace_time.perf_counter()
        line = _pace_sys.stdin.readline()
        self.paused += _pace_time.perf_counter() - began
        if line.strip() != "go " + migration:
            raise Stopped("rehearse did not start %s (it said %r)" % (migration, line.strip()))
