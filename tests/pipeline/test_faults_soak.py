"""`make soak`: a pipeline run SIGKILLed at a random moment, N times over, each followed by a run
that must converge to the clean run's warehouse (`tests/helpers/faults.py`).

Every round starts from a fresh copy of the last good state (a day before), so the killed run
has a day of events to load as well as a sync, a dbt build and a serving copy to publish: the
kill lands in any of them. `CRM_SOAK_KILLS` sets N (default 10); `CRM_SOAK_SEED` makes the
moments repeatable (the seed in use is printed on failure).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.helpers.faults import (
    DAY,
    FaultWorld,
    assert_no_duplicate_events,
    assert_same_state,
    descendants,
    kill,
    run,
    start,
    wait_gone,
    warehouse_state,
)

RUN = ["run", "--date", DAY.isoformat()]


@pytest.mark.soak
def test_killed_at_a_random_moment_then_run_again_converges(
        fault_world: FaultWorld, tmp_path: Path) -> None:
    kills = int(os.environ.get("CRM_SOAK_KILLS", "10"))
    seed = int(os.environ.get("CRM_SOAK_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    window = 40.0  # seconds; then the length of the last full run, so kills span a whole run
    log = []
    for round_no in range(kills):
        work = tmp_path / f"round{round_no}"
        wh_file = fault_world.copy_previous(work)
        wh_url = f"duckdb:///{wh_file}"
        env = fault_world.env(wh_url)
        delay = rng.uniform(0, window)
        proc = start(RUN, work, env)
        time.sleep(delay)
        if proc.poll() is None:
            children = descendants(proc.pid)
            kill(proc)
            assert not wait_gone(children), f"seed {seed}, round {round_no}: orphan survived"
            outcome = f"killed after {delay:.1f}s"
        else:
            proc.communicate()
            assert proc.returncode == 0, f"seed {seed}, round {round_no}: run failed"
            outcome = f"finished before the kill at {delay:.1f}s"
        started = time.monotonic()
        again = run(RUN, work, env)
        window = time.monotonic() - started
        assert again.returncode == 0, f"seed {seed}, round {round_no}: {again.stderr}"
        state = warehouse_state(wh_url)
        assert_same_state(state, fault_world.reference_state,
                          f"seed {seed}, round {round_no} ({outcome})")
        assert_no_duplicate_events(state)
        log.append(outcome)
    print(f"seed {seed}: " + "; ".join(log))
