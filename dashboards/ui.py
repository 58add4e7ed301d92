"""Layout helpers every page shares: sign-in and scope, the filter sidebar, the "data as of"
line, KPI cards, charts with their CSV download, and empty states.

No SQL here: numbers come from `dashboards.data`; this module only decides how they look.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
import pyarrow as pa
import streamlit as st

from crm_core.errors import CrmError
from crm_core.landing import strict_date
from crm_core.settings import Settings
from dashboards import data, formats
from dashboards.access import Scope, Viewer, resolve_viewer
from dashboards.data import Coverage, Filters, Source, shift_days
from dashboards.mart_columns import MartColumn
from dashboards.names import Names

#: Default length of the date range: the last quarter up to the as-of date.
DEFAULT_RANGE_DAYS = 90
#: One palette for every chart, so a series keeps its colour across pages.
PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
           "#65a30d", "#475569", "#ea580c"]
REVENUE, SPEND = PALETTE[1], PALETTE[3]

# One small chart template, registered once as Plotly's default. Naming a built-in template
# such as "plotly_white" on every figure deep-copies and re-validates it each time, which
# would dominate a cached page run.
_AXIS = {"gridcolor": "#e5e7eb", "linecolor": "#d1d5db", "zerolinecolor": "#e5e7eb",
         "automargin": True}
pio.templates["crm"] = go.layout.Template(layout={
    "colorway": PALETTE, "paper_bgcolor": "white", "plot_bgcolor": "white",
    "font": {"family": "Inter, Segoe UI, sans-serif", "size": 13, "color": "#1f2937"},
    # The legend sits above the plot area, in its own top margin: never over the data.
    "margin": {"l": 8, "r": 8, "t": 48, "b": 8},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0,
               "title": {"text": ""}},
    "xaxis": _AXIS, "yaxis": _AXIS, "hovermode": "closest",
})
pio.templates.default = "crm"


@dataclass(frozen=True)
class PageContext:
    """What a page needs after sign-in and filtering."""

    src: Source
    scope: Scope
    filters: Filters
    viewer: Viewer
    #: Business, branch and owner names for every label the page shows.
    names: Names

    def figure(self, name: str, build: Callable[[], go.Figure],
               *extra: Hashable) -> go.Figure:
        """The page's figure `name`, built once per data version, scope, filters and currency
        in this process (plus `extra`: any other widget the figure depends on), and shared
        read-only by every session showing that view. `build` may read only what those
        determine."""
        key = ("figure", name, self.scope, self.filters, _currency.get(), *extra)
        return self.src.memo(key, build)


# --------------------------------------------------------------------------------------------
# Sign-in, scope, filters, as-of line


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def _viewer(settings: Settings) -> Viewer:
    oidc_configured = settings.auth == "oidc" or (settings.auth == "auto"
                                                   and _oidc_configured())
    oidc_user = None
    if oidc_configured:
        if st.user.get("is_logged_in"):
            oidc_user = str(st.user.get("email") or "")
        else:
            st.info("Sign in to see your dashboards.", icon="🔑")
            st.button("Sign in", on_click=st.login, type="primary")
            st.stop()
    header_user = st.context.headers.get(settings.auth_header)
    return resolve_viewer(settings, header_user=header_user, oidc_user=oidc_user,
                          oidc_configured=oidc_configured)


#: KPI cards never cut a figure or a label: a row of cards wraps onto a second line when the
#: window is too narrow for all of them at their minimum width, labels and the grey "no
#: comparison" reason wrap inside the card.
_CARD_CSS = """<style>
div[data-testid="stHorizontalBlock"]:has(> div [data-testid="stMetric"]) {
    flex-wrap: wrap; row-gap: 1rem; }
div[data-testid="stHorizontalBlock"]:has(> div [data-testid="stMetric"])
    > div[data-testid="stColumn"] { min-width: 170px; }
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *,
[data-testid="stMetricDelta"], [data-testid="stMetricDelta"] * {
    white-space: normal !important; overflow: visible !important;
    text-overflow: clip !important; height: auto !important; }
</style>"""


def page(title: str, *, dates: bool = True, campaign_type: bool = False,
         lead_source: bool = False, owner: bool = False, note: str = "") -> PageContext:
    """Title, sign-in, sidebar filters and the "data as of" line; stops the page (with a
    message saying why) when there is nothing the viewer may see."""
    st.html(_CARD_CSS)
    st.title(title)
    try:
        settings = Settings.from_env()
        viewer = _viewer(settings)
        if not viewer.allowed:
            st.error(viewer.message, icon="🔒")
            st.stop()
        _currency.set(settings.currency)
        src = Source.open(settings)
        as_of = data.data_as_of(src)
        names = data.names(src, viewer.scope)
        filters = _sidebar(src, viewer, as_of, names, dates=dates, campaign_type=campaign_type,
                           lead_source=lead_source, owner=owner)
    except CrmError as exc:
        st.warning(f"No data to show: {exc}", icon="⏳")
        st.stop()
    _as_of_line(as_of, filters, dates=dates, note=note)
    return PageContext(src, viewer.scope, filters, viewer, names)


def _as_of_line(as_of: dict[str, Any] | None, filters: Filters, *, dates: bool,
                note: str) -> None:
    parts = []
    if as_of:
        parts.append(f"Data as of **{as_of['as_of_date']:%Y-%m-%d}** · last successful run "
                     f"{as_of['finished_at']:%Y-%m-%d %H:%M} UTC")
    else:
        parts.append("No successful pipeline run recorded yet")
    if dates and filters.start and filters.end:
        parts.append(f"showing {filters.start:%d %b %Y} – {filters.end:%d %b %Y}")
    if note:
        parts.append(note)
    st.caption(" · ".join(parts))


def _sidebar(src: Source, viewer: Viewer, as_of: dict[str, Any] | None, names: Names, *,
             dates: bool, campaign_type: bool, lead_source: bool, owner: bool) -> Filters:
    scope = viewer.scope
    with st.sidebar:
        if viewer.mode == "demo":
            st.badge("demo — not signed in", icon="⚠️", color="orange")
        else:
            st.caption(f"Signed in as **{viewer.user}**")
        st.subheader("Filters")
        pairs = data.tenants(src, scope)
        businesses = sorted(b for b in pairs["business_id"].unique().to_list() if b is not None)
        chosen_businesses = _multiselect("Business", "business", businesses,
                                         names.business)
        in_chosen = pairs if not chosen_businesses else pairs.filter(
            pl.col("business_id").is_in(chosen_businesses))
        branches = sorted(b for b in in_chosen["branch_id"].unique().to_list() if b is not None)
        chosen_branches = _multiselect("Branch", "branch", branches, names.branch)
        start = end = None
        if dates:
            start, end = _date_range(src, scope, as_of)
        types: list[str] = []
        if campaign_type:
            types = _multiselect("Campaign type", "ctype", data.campaign_types(src, scope), str)
        sources: list[str] = []
        if lead_source:
            sources = _multiselect("Lead source", "source", data.lead_sources(src, scope), str)
        owners: list[int] = []
        if owner:
            owners = _multiselect("Owner", "owner", data.deal_owners(src, scope), names.owner)
            st.caption("The owner filter narrows the open pipeline by owner and by close "
                       "month; the other figures here are not split by owner.")
    return Filters(tuple(chosen_businesses), tuple(chosen_branches), start, end,
                   tuple(types), tuple(sources), tuple(owners))


def _multiselect(label: str, param: str, options: list[Any], fmt: Any) -> list[Any]:
    """A multiselect whose state lives in the URL (`?business=1,2`) so links can be shared.
    Values the viewer may not see are dropped: the options come from their scope, and the
    scope is enforced again in the SQL."""
    key = f"filter_{param}"
    if key not in st.session_state:
        raw = st.query_params.get(param, "")
        wanted = [part.strip() for part in raw.split(",") if part.strip()]
        st.session_state[key] = [o for o in options if str(o) in wanted]
    else:
        st.session_state[key] = [o for o in st.session_state[key] if o in options]
    chosen = st.multiselect(label, options, key=key, format_func=fmt,
                            placeholder=f"All ({len(options)})")
    if chosen:
        st.query_params[param] = ",".join(str(c) for c in chosen)
    else:
        st.query_params.pop(param, None)
    return chosen


def _date_range(src: Source, scope: Scope,
                as_of: dict[str, Any] | None) -> tuple[date | None, date | None]:
    first, last = data.activity_dates(src, scope)
    end_default = as_of["as_of_date"] if as_of else (last or date.today())
    start_default = shift_days(end_default, -(DEFAULT_RANGE_DAYS - 1))
    lowest = min(d for d in (first, start_default) if d is not None)
    highest = max(d for d in (last, end_default) if d is not None)
    low, high = shift_days(lowest, -366), highest
    key = "filter_dates"
    if key not in st.session_state:
        # A URL's dates are clamped into the picker's bounds (a date outside them would make
        # Streamlit raise); a reversed range falls back to the default.
        start = min(max(_param_date("from", start_default), low), high)
        end = min(max(_param_date("to", end_default), low), high)
        st.session_state[key] = (start, end) if start <= end else (start_default, end_default)
    picked = st.date_input("Date range", key=key, min_value=low, max_value=high,
                           format="YYYY-MM-DD")
    start, end = (tuple(picked) + (None, None))[:2] if isinstance(picked, tuple) else \
        (picked, picked)
    if start:
        st.query_params["from"] = start.isoformat()
    if end:
        st.query_params["to"] = end.isoformat()
    return start, end


def _param_date(name: str, default: date) -> date:
    return strict_date(st.query_params.get(name, "")) or default


# --------------------------------------------------------------------------------------------
# Numbers


#: The page run's currency (CRM_CURRENCY), set by `page()`; None outside a page.
_currency: ContextVar[str | None] = ContextVar("crm_currency", default=None)

count, pct, change = formats.count, formats.pct, formats.change


def money(value: Any) -> str:
    """Compact money in the configured currency ("$792k"): what cards and bars show."""
    return formats.money(value, _currency.get())


def money_exact(value: Any) -> str:
    """Exact money with separators and cents: what tooltips show."""
    return formats.money_exact(value, _currency.get())


def month_label(month: Any) -> str:
    return "no close date" if month is None else f"{month:%b %Y}"


class Reason(str):
    """Text that stands where a delta would: why there is no comparison."""


def compare(current: Any, previous: Any, first: date | None, period: Filters, *,
            rate: bool = False) -> str:
    """The delta against the previous period, only when data covers all of that period;
    otherwise the reason (e.g. "no data before 2 Sep")."""
    if not Coverage.covers(first, period):
        return Reason(formats.no_comparison(first))
    delta = change(current, previous, rate=rate)
    return delta if delta is not None else Reason("0 in the period before")


def kpi(column: Any, label: str, value: str, delta: str | None = None, *, help: str = "",
        inverse: bool = False, exact: str | None = None) -> None:
    """A KPI card. `value` is compact so it never truncates; `exact` (the full figure) goes
    into the tooltip. A `Reason` in place of the delta is shown grey, without an arrow."""
    why = ("No change shown: the data do not cover the whole previous period."
           if isinstance(delta, Reason) else "")
    tip = " ".join(part for part in (f"Exact: **{exact}**." if exact else "", help, why)
                   if part)
    if isinstance(delta, Reason):
        column.metric(label, value, str(delta), border=True, help=tip or None,
                      delta_color="off", delta_arrow="off")
        return
    column.metric(label, value, delta, border=True, help=tip or None,
                  delta_color="inverse" if inverse else "normal")


def money_kpi(column: Any, label: str, value: Any, delta: str | None = None, *,
              help: str = "", inverse: bool = False) -> None:
    """A money KPI: compact on the card, exact in the tooltip."""
    kpi(column, label, money(value), delta, help=help, inverse=inverse,
        exact=money_exact(value))


# --------------------------------------------------------------------------------------------
# Charts and tables


def chart_frame(df: pl.DataFrame) -> Any:
    """Decimals become floats for plotting (money stays exact in the CSV download)."""
    return df.with_columns(pl.col(pl.Decimal).cast(pl.Float64)).to_pandas()


def style(fig: go.Figure, *, height: int = 340, money_axis: bool = False,
          money_x: bool = False, every_tick: bool = False) -> go.Figure:
    """Height; for money, SI-abbreviated ticks with the currency symbol (on y, or on x for a
    horizontal bar chart); `every_tick` labels every category (turned when they are many)
    instead of Plotly's every other one. The rest comes from the "crm" template."""
    fig.layout.height = height
    prefix = formats.currency_prefix(_currency.get())
    if money_axis:
        fig.layout.yaxis.update(tickformat="~s", tickprefix=prefix)
    if money_x:
        fig.layout.xaxis.update(tickformat="~s", tickprefix=prefix)
    if every_tick:
        # Plotly turns the labels by itself when they would overlap, instead of skipping some
        fig.layout.xaxis.update(type="category", tickmode="linear", dtick=1)
    return fig


def chart(title: str, fig: go.Figure, table: pl.DataFrame, *, file_name: str) -> None:
    """A titled Plotly chart with the table behind it as a CSV download."""
    with st.container(border=True):
        st.markdown(f"**{title}**")
        st.plotly_chart(fig, key=f"chart_{file_name}", config={"displaylogo": False})
        download(table, file_name)


def download(table: pl.DataFrame | Callable[[], pl.DataFrame], file_name: str) -> None:
    """A CSV download whose bytes are made only when clicked (Streamlit calls `data` then, on
    its own thread): writing every table's CSV on each page run cost more than the page."""
    def csv() -> str:
        return (table() if callable(table) else table).write_csv()

    st.download_button("⬇ CSV", csv, file_name=f"{file_name}.csv", mime="text/csv",
                       key=f"csv_{file_name}", on_click="ignore")


#: Column labels people read (any other column: its name with spaces, capitalised).
LABELS = {
    "business_name": "Business", "branch_name": "Branch", "owner_name": "Owner",
    "campaign_name": "Campaign", "campaign_type": "Type", "contact_code": "Contact",
    "contact_label": "Contact", "contact_type": "Contact type",
    "customer_group_name": "Customer group", "customer_group": "Customer group",
    "won_revenue": "Won revenue", "won_deal_count": "Won deals",
    "open_pipeline_value": "Open pipeline", "total_sale_due": "Sales due",
    "account_balance": "Account balance", "ctr": "CTR", "cvr": "CVR", "roi": "ROI",
    "won_roi": "ROI on won deals", "reported_roi": "Reported ROI",
    "reported_revenue": "Reported revenue", "attributed_leads": "Leads brought",
    "attributed_deals": "Deals brought", "won_amount": "Won revenue",
    "cost_per_lead": "Cost per lead", "deal_id": "Deal", "stage_name": "Stage",
    "close_date": "Close date", "days_overdue": "Days overdue",
    "days_since_update": "Days since update", "is_overdue": "Overdue", "is_stale": "Stale",
    "is_slipped": "Slipped", "slip_count": "Times slipped", "slip_days_total": "Days slipped",
    "avg_deal_size": "Avg deal size", "avg_cycle_days": "Avg cycle (days)",
    "velocity_per_day": "Velocity per day", "cohort_month": "Cohort month",
    "new_pipeline": "New pipeline", "slipped_share": "Deals slipped",
    "days_per_slip": "Days per slip",
}
#: Id columns a table hides when the name beside them is shown (the CSV keeps both).
_ID_BESIDE_NAME = {"business_id": "business_name", "branch_id": "branch_name",
                   "owner_id": "owner_name", "contact_pk": "contact_label"}


#: Money columns that arrive as floats (ratios of money to a count).
_MONEY_FLOATS = {"avg_deal_size", "velocity_per_day"}


def label(column: str) -> str:
    return LABELS.get(column) or column.replace("_", " ").capitalize()


def _is_rate(column: str, dtype: pl.DataType) -> bool:
    return dtype.is_float() and any(word in column for word in ("rate", "roi", "share",
                                                                "ctr", "cvr"))


def _format(column: str, dtype: pl.DataType) -> str | None:
    """How a column reads when its mart does not say (`MartColumn.format`): money for a
    decimal with cents, a count for integers (plain for an id), a percentage for a rate."""
    if (isinstance(dtype, pl.Decimal) and (dtype.scale or 0) > 0) or column in _MONEY_FLOATS:
        return "money"
    if isinstance(dtype, pl.Decimal) or dtype.is_integer():
        return "id" if column.endswith("_id") else "count"
    if _is_rate(column, dtype):
        return "percent"
    if dtype.is_float():
        return "number"
    return "date" if dtype == pl.Date else None


def table(title: str, df: pl.DataFrame, *, file_name: str,
          column_config: dict[str, Any] | None = None,
          columns: Sequence[MartColumn] = (),
          csv: Callable[[], pl.DataFrame] | None = None) -> None:
    """A titled table with human column labels, money in the currency with separators,
    counts with separators and rates as percentages of one precision; the CSV download
    keeps the raw columns (ids beside names, exact decimals). `columns` are mart columns
    whose label and format their mart's `.yml` gives (`dashboards.mart_columns`). `csv`,
    when given, makes the download's rows (all of them, where the table shows the first
    few)."""
    prefix = formats.currency_prefix(_currency.get()).replace("%", "%%")
    shown = df.drop([c for c, name in _ID_BESIDE_NAME.items()
                     if c in df.columns and name in df.columns])
    declared = {c.name: c for c in columns}
    config: dict[str, Any] = {}
    casts = []
    for column, dtype in shown.schema.items():
        mart = declared.get(column)
        text = (mart.label if mart else None) or label(column)
        kind = (mart.format if mart else None) or _format(column, dtype)
        if kind == "money":
            config[column] = st.column_config.NumberColumn(text, format=f"{prefix}%,.2f")
            casts.append(pl.col(column).cast(pl.Float64))
        elif kind in ("count", "id"):
            config[column] = st.column_config.NumberColumn(
                text, format="%d" if kind == "id" else "%,d")
            casts.append(pl.col(column).cast(pl.Float64))
        elif kind == "percent":
            config[column] = st.column_config.NumberColumn(
                text, format=f"%.{formats.PCT_DECIMALS}f%%")
            casts.append(pl.col(column) * 100)
        elif kind == "number":
            config[column] = st.column_config.NumberColumn(text, format="%,.1f")
        elif kind == "date":
            config[column] = st.column_config.DateColumn(text, format="YYYY-MM-DD")
        else:
            config[column] = text
    config.update(column_config or {})
    with st.container(border=True):
        st.markdown(f"**{title}**")
        st.dataframe(_arrow(shown.with_columns(casts)), hide_index=True, column_config=config)
        download(csv or df, file_name)


def _arrow(df: pl.DataFrame) -> pa.Table:
    """The table as Arrow with plain string columns. Streamlit serialises an Arrow table as it
    is; a polars frame it would first convert to pandas and back, on every page run (a sixth
    of a cached page run's CPU under load)."""
    table = df.to_arrow()
    return table.cast(pa.schema([
        pa.field(f.name, pa.string()) if (pa.types.is_large_string(f.type)
                                          or pa.types.is_string_view(f.type)
                                          or pa.types.is_dictionary(f.type)) else f
        for f in table.schema]))


def empty(why: str) -> None:
    """An empty state that says why there is nothing to show."""
    st.info(why, icon="ℹ️")


def is_zero(value: Any) -> bool:
    return value is None or value == 0 or value == Decimal(0)
