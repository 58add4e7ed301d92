"""Keyed hashes of personal data: how the PII key reaches dbt without ever entering SQL.

Phone numbers, alternative phones and tax numbers never leave staging as values; staging keeps
HMAC-SHA256 digests (`dbt_project/macros/pii_hash.sql`) so that a later join or dedup on them
still works. A plain hash would not do: phone numbers are few enough to enumerate.

The key must not appear in compiled SQL, dbt artefacts or logs, so it is never a dbt var.
Instead HMAC is computed from its definition, H((K ^ opad) || H((K ^ ipad) || m)), with the
two 64-byte key pads handed to the warehouse session out of band:

- DuckDB: the dbt-duckdb plugin `orchestration.dbt_pii_plugin` reads the key from the dbt
  process's environment (`DBT_ENV_SECRET_CRM_PII_KEY`, a name dbt scrubs from its logs) and
  sets the session variables `crm_pii_ipad` / `crm_pii_opad` with bound parameters.
- PostgreSQL: libpq's `PGOPTIONS` sets the custom settings `crm.pii_ipad` / `crm.pii_opad`
  (hex) when dbt connects; the SQL reads them with `current_setting`.
- Spark: the Spark output of `profiles.yml` sets the session settings `crm.pii_ipad` /
  `crm.pii_opad` (hex) from `DBT_ENV_SECRET_CRM_PII_IPAD` / `..._OPAD`, names dbt scrubs from
  its logs; the SQL names them as `${crm.pii_ipad}`, which Spark fills in when it runs it.

Without a key the variables are absent and every hash is NULL (see README.md, "Configuration").
Stdlib only: the dbt process imports this through the plugin.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

#: The environment variable that carries the key into the dbt process.
KEY_ENV = "DBT_ENV_SECRET_CRM_PII_KEY"
#: DuckDB session variables holding the inner and outer key pads (BLOB).
DUCKDB_VARIABLES = ("crm_pii_ipad", "crm_pii_opad")
#: PostgreSQL custom settings holding the inner and outer key pads (hex text).
POSTGRES_SETTINGS = ("crm.pii_ipad", "crm.pii_opad")
#: SHA-256's block size: the length of the key pads.
BLOCK = 64


def key_pads(key: str) -> tuple[bytes, bytes]:
    """The HMAC-SHA256 inner and outer pads of `key` (RFC 2104): a key longer than a block is
    hashed first, then zero-padded to the block and XORed with 0x36 and 0x5c."""
    raw = key.encode("utf-8")
    if len(raw) > BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def pads_from_environment(environ: Mapping[str, str] | None = None) -> tuple[bytes, bytes] | None:
    """The pads of the key in the dbt process's environment, or None when there is none."""
    key = (os.environ if environ is None else environ).get(KEY_ENV, "")
    return key_pads(key) if key else None


def postgres_options(pads: tuple[bytes, bytes], existing: str = "") -> str:
    """`PGOPTIONS` that set the pads as custom settings of every session dbt opens."""
    settings = " ".join(f"-c {name}={pad.hex()}" for name, pad in zip(POSTGRES_SETTINGS, pads,
                                                                        strict=True))
    return f"{existing} {settings}".strip()


#: Environment variables the Spark output of profiles.yml reads the pads from (hex).
SPARK_PAD_VARIABLES = ("DBT_ENV_SECRET_CRM_PII_IPAD", "DBT_ENV_SECRET_CRM_PII_OPAD")


def dbt_secret_environment(key: str | None, *, postgres: bool,
                           spark: bool = False) -> dict[str, str]:
    """The variables that hand the key to a dbt process (empty without a key)."""
    if not key:
        return {}
    env = {KEY_ENV: key}
    if postgres:
        env["PGOPTIONS"] = postgres_options(key_pads(key), os.environ.get("PGOPTIONS", ""))
    if spark:
        env |= {name: pad.hex()
                for name, pad in zip(SPARK_PAD_VARIABLES, key_pads(key), strict=True)}
    return env


@contextmanager
def environment_while(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in this process's environment only while the block runs (a subprocess
    started inside inherits them), then restore what was there. The pipeline's own later
    connections (locks, serving copy) then never carry the key."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
