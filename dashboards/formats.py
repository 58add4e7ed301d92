"""How numbers read, once, for the dashboards and the daily digest: money in the configured
currency (CRM_CURRENCY, an ISO 4217 code; none: plain numbers), compact figures for cards and
exact ones for tooltips and tables, thousands separators, and one percentage precision.

Pure functions of their arguments (no Streamlit), so the digest e-mail reads like the pages.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

#: Symbols for common ISO 4217 codes; any other code is written before the number ("CHF 12k").
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "KRW": "₩",
           "NGN": "₦", "BRL": "R$", "CAD": "CA$", "AUD": "A$", "MXN": "MX$", "ILS": "₪",
           "PHP": "₱", "VND": "₫", "TRY": "₺", "UAH": "₴", "PLN": "zł ", "RUB": "₽"}
#: Percentages everywhere have this many decimals.
PCT_DECIMALS = 1


def currency_prefix(currency: str | None) -> str:
    """What goes before a money figure: "$", "€", "CHF " or nothing."""
    if not currency:
        return ""
    return SYMBOLS.get(currency, f"{currency} ")


def _signed(prefix: str, number: float, body: str) -> str:
    return f"-{prefix}{body}" if number < 0 else f"{prefix}{body}"


def compact(value: Any) -> str:
    """Three significant digits with a k/M/B suffix (792k, 1.23M, 12.3M); below 1,000 the
    whole number. Short enough for a KPI card at any width the pages use."""
    number = abs(float(value))
    rounded = float(f"{number:.3g}")
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if rounded >= limit:
            scaled = rounded / limit
            decimals = 2 if scaled < 10 else 1 if scaled < 100 else 0
            return f"{scaled:,.{decimals}f}{suffix}"
    return f"{number:,.0f}"


def money(value: Any, currency: str | None = None) -> str:
    """A compact money figure for cards and digests: "$792k"; "–" when unknown."""
    if value is None:
        return "–"
    number = float(value)
    return _signed(currency_prefix(currency), number, compact(number))


def money_exact(value: Any, currency: str | None = None) -> str:
    """The exact amount with thousands separators and cents: "$792,412.35"."""
    if value is None:
        return "–"
    number = Decimal(str(value))
    return _signed(currency_prefix(currency), float(number), f"{abs(number):,.2f}")


def count(value: Any) -> str:
    return f"{int(value or 0):,}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{float(value):.{PCT_DECIMALS}%}"


def change(current: Any, previous: Any, *, rate: bool = False) -> str | None:
    """The delta shown under a KPI: relative change for amounts, percentage points for rates;
    None when there is nothing to compare with (no value, or a previous amount of 0)."""
    if current is None or previous is None:
        return None
    if rate:
        return f"{(float(current) - float(previous)) * 100:+.{PCT_DECIMALS}f} pp"
    if float(previous) == 0:
        return None
    return f"{(float(current) - float(previous)) / abs(float(previous)):+.{PCT_DECIMALS}%}"


def no_comparison(first: date | None) -> str:
    """Why a card has no delta: the previous period is not (wholly) covered by data. Short
    enough for the narrowest card ("no data before 2 Sep")."""
    if first is None:
        return "no data yet"
    return f"no data before {first.day} {first:%b}"
