"""CPU seconds of other processes, read from /proc (Linux), without psutil: a daemon
the bench started, and a PostgreSQL server with every process it forked.

`/proc/<pid>/stat` fields 14-17 are utime, stime, cutime, cstime in clock ticks
(proc(5)); utime and stime cover every thread of the process, cutime and cstime the
children it has waited for. A PostgreSQL backend ends with its connection, and the
postmaster waits for it: its time moves into the postmaster's cutime/cstime, so
the server's total never loses the CPU of a session that closed.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = 1 / os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[int, int, int, int, int]:
    """(ppid, utime, stime, cutime, cstime) of `pid`; raises OSError once it is gone."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name, field 2, is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ppid, utime, stime, cutime, cstime


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` so far, all its threads."""
    _, utime, stime, _, _ = _times(pid)
    return (utime + stime) * TICK


def tree_cpu(root: int) -> float:
    """User + system CPU seconds of `root`, of its live children, and of the children
    it has reaped: a server and the sessions it forked, ended ones included."""
    _, utime, stime, cutime, cstime = _times(root)
    ticks = utime + stime + cutime + cstime
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid, c_utime, c_stime, _, _ = _times(int(entry.name))
        except (OSError, ValueError):
            continue  # ended while we looked
        if ppid == root:
            # A child's own children are reaped into its cutime; PostgreSQL's
            # backends fork none.
            ticks += c_utime + c_stime
    return ticks * TICK
