"""`crm-analytics`, killed with SIGKILL at a chosen point of a CDC sync.

Run as a script: `python tests/helpers/killed_cdc_sync.py <point> sync`, where <point> is
- `before-commit`: inside the warehouse transaction, once the data is applied, as the
  applied position is about to be recorded (nothing may stay of this sync);
- `before-advance`: after the warehouse committed, before the slot is advanced (the next
  sync must not apply those changes twice).
Production code holds no fault hook: this wrapper patches the CDC sync module in this process.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import ingestion.erp.cdc_sync as cdc_sync
from crm_cli.cli import main


def _killing(_original: Any) -> Any:
    def kill(*_args: Any, **_kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    return kill


if __name__ == "__main__":
    point, args = sys.argv[1], sys.argv[2:]
    if point == "before-commit":
        cdc_sync.write_position = _killing(cdc_sync.write_position)
    elif point == "before-advance":
        cdc_sync.advance = _killing(cdc_sync.advance)
    else:
        raise SystemExit(f"unknown kill point {point!r}")
    sys.exit(main(args))
