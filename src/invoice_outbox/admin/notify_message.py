"""What an admin notification says: the counts of one period (`Summary`) and their rendering.

Contract:

- **Counts only, never patient data.**  A `Summary` holds counts per cause slug and system
  name and the period; the texts add fixed words, the cause labels of
  `invoice_outbox.sendings.causes` and a pointer to the admin lists.  Never invoice or
  patient ids, documents or reasons (free text that could echo a document).
- **One vocabulary.**  A cause reads as `causes.describe(slug).label`, the words the dashboard
  and the API use for it; a group without a cause is the causes module's `UNKNOWN` group.
- **Pure.**  Rendering reads no database, clock or network: the same summary and settings
  always give the same text and document.

The period bookkeeping and the delivery are `invoice_outbox.admin.notifications`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from invoice_outbox.sendings import causes
from invoice_outbox.settings import Settings

#: Where admins find the invoices behind the counts (an admin's bearer token is needed).
ABORTED_LIST_PATH = "/api/v1/billing/invoices/aborted"
#: Lines per section of the text; the rest is summed up in one line.
MAX_LINES = 20


@dataclass(frozen=True, slots=True)
class Group:
    """Counts for one cause at one system.  `cause` is None when the row has none."""

    cause: str | None
    system: str
    aborted: int
    recovered: int
    #: Delivered, and the recipient's acknowledgement is past its deadline (cause
    #: `OVERDUE`, a group of its own).
    overdue: int = 0


@dataclass(frozen=True, slots=True)
class Summary:
    """What aborted and what recovered in ``[since, until)``, per cause and system."""

    since: datetime
    until: datetime
    groups: tuple[Group, ...]

    @property
    def aborted_count(self) -> int:
        return sum(group.aborted for group in self.groups)

    @property
    def recovered_count(self) -> int:
        return sum(group.recovered for group in self.groups)

    @property
    def overdue_count(self) -> int:
        return sum(group.overdue for group in self.groups)

    @property
    def is_empty(self) -> bool:
        return not self.groups

    def by_cause(self) -> dict[str, Any]:
        """The `NotificationRun.summary` JSON: ``{cause: {Aborted, Recovered, Systems}}``;
        sendings without a cause count under `causes.UNKNOWN`."""
        by_cause: dict[str, Any] = {}
        for group in self.groups:
            entry = by_cause.setdefault(
                group.cause or causes.UNKNOWN, {"Aborted": 0, "Recovered": 0, "Systems": {}}
            )
            entry["Aborted"] += group.aborted
            entry["Recovered"] += group.recovered
            entry["Systems"][group.system] = {
                "Aborted": group.aborted,
                "Recovered": group.recovered,
            }
            if group.overdue:
                entry["Overdue"] = entry.get("Overdue", 0) + group.overdue
                entry["Systems"][group.system]["Overdue"] = group.overdue
        return by_cause


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts[:2]) or "0 seconds"


def headline(summary: Summary) -> str:
    """The first line of the text, and the e-mail's subject."""
    aborted = summary.aborted_count
    overdue = ""
    if summary.overdue_count:
        overdue = (
            f"{summary.overdue_count} still without the recipient's verdict past its deadline, "
        )
    return (
        f"invoice-outbox: {aborted} invoice{'s' if aborted != 1 else ''} could not be sent, "
        f"{summary.recovered_count} got through after failing, {overdue}"
        f"in the last {_duration(summary.until - summary.since)}"
    )


def _section(title: str, lines: list[tuple[str, int]]) -> list[str]:
    if not lines:
        return []
    out = ["", title]
    out += [f"  {text}: {count}" for text, count in lines[:MAX_LINES]]
    if rest := lines[MAX_LINES:]:
        out.append(f"  and {len(rest)} more groups: {sum(count for _, count in rest)}")
    return out


def _rejection(group: Group) -> bool:
    return group.cause is not None and causes.describe(group.cause).rejection


def _group_text(group: Group) -> str:
    """ "<cause label> at <system>", or the system alone when the rows have no cause (as
    recoveries, whose cause the worker clears when they are sent)."""
    if group.cause is None:
        return group.system
    return f"{causes.describe(group.cause).label} at {group.system}"


def render_text(summary: Summary, settings: Settings) -> str:
    """The plain-text message: headline, counts per cause and system, where to look."""
    zone = settings.zone
    start, end = summary.since.astimezone(zone), summary.until.astimezone(zone)
    lines = [
        headline(summary),
        f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({settings.timezone})",
    ]
    by_aborted = sorted(
        (g for g in summary.groups if g.aborted and not _rejection(g)),
        key=lambda g: (-g.aborted, _group_text(g)),
    )
    rejected = sorted(
        (g for g in summary.groups if g.aborted and _rejection(g)),
        key=lambda g: (-g.aborted, _group_text(g)),
    )
    overdue = sorted((g for g in summary.groups if g.overdue), key=lambda g: (-g.overdue, g.system))
    by_recovered = sorted(
        (g for g in summary.groups if g.recovered), key=lambda g: (-g.recovered, _group_text(g))
    )
    lines += _section(
        "Could not be sent (no more automatic attempts):",
        [(_group_text(g), g.aborted) for g in by_aborted],
    )
    lines += _section(
        "Rejected by the recipient (the practice or an administrator must act):",
        [(_group_text(g), g.aborted) for g in rejected],
    )
    lines += _section(
        "Delivered, but no acknowledgement by the deadline:",
        [(g.system, g.overdue) for g in overdue],
    )
    lines += _section(
        "Got through after failing:", [(_group_text(g), g.recovered) for g in by_recovered]
    )
    lines += [
        "",
        f"Which invoices and why: GET {ABORTED_LIST_PATH} (admins) or the admin dashboard.",
        "This message holds counts only, never invoice or patient data.",
    ]
    return "\n".join(lines) + "\n"


def render_document(summary: Summary, settings: Settings) -> dict[str, Any]:
    """The webhook's JSON document.  `text` (the whole message) is what chat webhooks such as
    Slack's or Mattermost's show; the other fields are for programs.  A group's `Cause` is
    its slug (null when the rows have none), its `Label` the causes module's label."""
    return {
        "text": render_text(summary, settings),
        "Event": "invoice-outbox.notification",
        "PeriodStart": summary.since.isoformat(),
        "PeriodEnd": summary.until.isoformat(),
        "Aborted": summary.aborted_count,
        "Recovered": summary.recovered_count,
        "Overdue": summary.overdue_count,
        "Groups": [
            {
                "Cause": group.cause,
                "Label": causes.describe(group.cause).label,
                "System": group.system,
                "Aborted": group.aborted,
                "Recovered": group.recovered,
                "Overdue": group.overdue,
            }
            for group in summary.groups
        ],
        "Links": {"Aborted": ABORTED_LIST_PATH},
    }
