"""Who is looking, and which tenants they may see.

Identity comes from Streamlit's OIDC login (`st.user`) or from a header set by a trusted
authenticating proxy (`CRM_AUTH=header`, e.g. oauth2-proxy's `X-Forwarded-Email`). The access
file (`CRM_ACCESS_FILE`) maps each user to the business and branch ids they may see:

    users:
      ceo@example.com: all
      ana@example.com:
        businesses: [1]      # every branch of business 1
        branches: [7, 8]     # and these branches of other businesses
        digest: true         # and the daily digest e-mail of that scope
      cfo@example.com: {all: true, digest: true}

The resulting `Scope` is applied in the SQL of `dashboards.data` (as bound parameters), so no
filter, query parameter or widget value can widen it. No authentication configured at all:
demo mode, everything visible and badged. Anything half-configured fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crm_core.errors import CrmError
from crm_core.settings import Settings


@dataclass(frozen=True)
class Scope:
    """The tenants a viewer may see: everything, or rows whose business id or branch id is
    listed. An empty scope sees nothing."""

    everything: bool = False
    business_ids: frozenset[int] = field(default_factory=frozenset)
    branch_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_empty(self) -> bool:
        return not self.everything and not self.business_ids and not self.branch_ids


EVERYTHING = Scope(everything=True)
NOTHING = Scope()


@dataclass(frozen=True)
class Viewer:
    """The outcome of signing in. `scope` is NOTHING unless `allowed`."""

    mode: str  # "demo" | "user" | "denied"
    scope: Scope
    user: str | None = None
    #: Why nothing is shown (for `denied`), in one sentence.
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.mode != "denied"


def load_access_file(path: Path) -> dict[str, Scope]:
    """Parse the access file into user (lower-cased) -> Scope; one-line `CrmError` if bad."""
    return {user: scope for user, (scope, _digest) in _read_users(path).items()}


def digest_recipients(path: Path) -> dict[str, Scope]:
    """The users marked `digest: true`, with their scope: who gets the daily e-mail."""
    return {user: scope for user, (scope, digest) in _read_users(path).items()
            if digest and not scope.is_empty}


def _read_users(path: Path) -> dict[str, tuple[Scope, bool]]:
    """user (lower-cased) -> (Scope, wants the digest); one-line `CrmError` if bad."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise CrmError(f"CRM_ACCESS_FILE {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CrmError(f"CRM_ACCESS_FILE {path} is not UTF-8 text (byte "
                       f"{exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise CrmError(f"CRM_ACCESS_FILE {path} is not valid YAML{where}") from None
    users = document.get("users") if isinstance(document, Mapping) else None
    if not isinstance(users, Mapping):
        raise CrmError(f"CRM_ACCESS_FILE {path} needs a top-level `users:` mapping")
    return {str(user).strip().lower(): (_scope_entry(path, str(user), entry),
                                        _wants_digest(path, str(user), entry))
            for user, entry in users.items()}


def _wants_digest(path: Path, user: str, entry: Any) -> bool:
    flag = entry.get("digest", False) if isinstance(entry, Mapping) else False
    if not isinstance(flag, bool):
        raise CrmError(f"CRM_ACCESS_FILE {path}: digest of {user!r} must be true or false")
    return flag


def _scope_entry(path: Path, user: str, entry: Any) -> Scope:
    if isinstance(entry, str) and entry.strip().lower() == "all":
        return EVERYTHING
    if not isinstance(entry, Mapping) or not set(entry) <= {"businesses", "branches", "all",
                                                            "digest"}:
        raise CrmError(f"CRM_ACCESS_FILE {path}: user {user!r} must map to `all` or to "
                       "`businesses:` and/or `branches:` lists of ids (and optionally "
                       "`digest: true`)")
    if entry.get("all") is True:
        return EVERYTHING
    ids: dict[str, frozenset[int]] = {}
    for key in ("businesses", "branches"):
        values = entry.get(key) or []
        if not isinstance(values, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise CrmError(f"CRM_ACCESS_FILE {path}: {key} of {user!r} must be a list of "
                           "whole-number ids")
        ids[key] = frozenset(values)
    return Scope(business_ids=ids["businesses"], branch_ids=ids["branches"])


def resolve_viewer(settings: Settings, *, header_user: str | None, oidc_user: str | None,
                   oidc_configured: bool) -> Viewer:
    """Decide who is looking and what they may see. Pure: the page passes in what Streamlit
    knows (the proxy header's value, the OIDC user's email, whether OIDC is configured)."""
    mode = settings.auth
    if mode == "auto":
        mode = "oidc" if oidc_configured else "none"
    if mode == "none":
        if settings.access_file is not None:
            return Viewer("denied", NOTHING, message=(
                "CRM_ACCESS_FILE is set but no sign-in is configured (set CRM_AUTH to "
                "`header` or `oidc`), so no data is shown."))
        return Viewer("demo", EVERYTHING)
    if settings.access_file is None:
        return Viewer("denied", NOTHING, message=(
            f"Sign-in is configured (CRM_AUTH={mode}) but CRM_ACCESS_FILE is not, so nobody "
            "may see any data yet."))
    user = (header_user if mode == "header" else oidc_user) or ""
    user = user.strip().lower()
    if not user:
        how = (f"the {settings.auth_header} header from the sign-in proxy is missing"
               if mode == "header" else "you are not signed in")
        return Viewer("denied", NOTHING, message=f"No data is shown: {how}.")
    scope = load_access_file(settings.access_file).get(user)
    if scope is None or scope.is_empty:
        return Viewer("denied", NOTHING, user=user, message=(
            f"You are signed in as {user}, but you have no access to any business or branch. "
            "Ask an administrator to add you to the dashboards' access file."))
    return Viewer("user", scope, user=user)
