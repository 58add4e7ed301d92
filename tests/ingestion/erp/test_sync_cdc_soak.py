"""`make soak`: CDC syncs SIGKILLed at random moments while the ERP keeps changing — the
warehouse must converge to the source with nothing lost and nothing applied twice."""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.helpers.cdc import CdcSource, assert_raw_equals, cdc_sync
from tests.helpers.faults import start

pytestmark = [pytest.mark.soak, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]
ROUNDS = 25


def _writer(source: CdcSource, stop: threading.Event, seed: int) -> None:
    """Random inserts, updates (the same rows again and again) and deletes, one transaction
    each, until `stop`; between them, writes to a table outside the publication, so that a
    sync often finds WAL past the last CRM commit (and confirms the slot up to there)."""
    rng = random.Random(seed)
    next_id = 50_000
    with psycopg.connect(source.conninfo, autocommit=True) as conn:
        while not stop.is_set():
            action = rng.random()
            contact = rng.randint(100, 400)
            if action < 0.1:
                conn.execute("insert into ledger_entries (memo) select repeat('x', 200) "
                             "from generate_series(1, 50)")
            elif action < 0.4:
                conn.execute("update contacts set credit_limit = %s where id = %s",
                             [rng.randint(0, 10_000), contact])
            elif action < 0.6:
                conn.execute("delete from contacts where id = %s", [contact])
            elif action < 0.8:
                conn.execute("insert into contacts (id, contact_id, business_id) values "
                             "(%s, %s, 1) on conflict (id) do update set contact_id = "
                             "excluded.contact_id", [contact, f"R-{next_id}"])
                next_id += 1
            else:
                with conn.transaction():
                    conn.execute("insert into crm_deals (id, title, contact_id, amount) "
                                 "values (%s, 't', 1, 1)", [next_id])
                    conn.execute("update crm_leads set value = value + 1 where id = 1")
                next_id += 1
            time.sleep(rng.random() * 0.01)


def test_cdc_syncs_killed_at_random_converge(cdc_source: CdcSource, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    cdc_source.execute("create table ledger_entries (id serial primary key, memo text)")
    cdc_sync(cdc_source, url)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(cdc_source, stop, 7))
    writer.start()
    rng = random.Random(11)
    killed = 0
    try:
        for _ in range(ROUNDS):
            proc = start(["sync"], ROOT, cdc_source.env(url), cli=[sys.executable, "-m",
                                                                   "crm_cli.cli"])
            time.sleep(rng.uniform(0.2, 2.5))
            if proc.poll() is None:
                proc.kill()
                killed += 1
            proc.communicate(timeout=120)
    finally:
        stop.set()
        writer.join()
    assert killed > 0
    cdc_sync(cdc_source, url)
    assert_raw_equals(cdc_source, url)
