#!/usr/bin/env python3
"""Start dbt so that it dies with the pipeline process that started it.

Why: dagster-dbt starts `dbt build` as a child process. When the pipeline process is killed
(SIGKILL, the OOM killer), an ordinary child carries on alone: it keeps writing the warehouse
after the run's write lock (held by the dead process) is gone, so the next run would race it —
two writers at once. On Linux this launcher asks the kernel to SIGKILL it when its parent dies
(`PR_SET_PDEATHSIG`, kept across `exec`), then replaces itself with the real dbt. Elsewhere it
only execs dbt. Stdlib only: it may run under any Python 3 (see the shebang).

Environment: `CRM_DBT_REAL_EXECUTABLE` (the dbt to run), `CRM_DBT_PARENT_PID` (the pipeline
process; if it is already gone when the launcher starts, dbt is not started at all).
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    dbt = os.environ["CRM_DBT_REAL_EXECUTABLE"]
    parent = int(os.environ.get("CRM_DBT_PARENT_PID", "0") or 0)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if parent and os.getppid() != parent:
            sys.exit("error: the pipeline process that started dbt is gone")
    os.execv(dbt, [dbt, *sys.argv[1:]])


if __name__ == "__main__":
    main()
