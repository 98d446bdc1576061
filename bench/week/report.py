"""The week's Markdown report with its two plots (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

STAGES = (
    ("to_accept_h", "abnormal → accepted (alert, answer, declines)"),
    ("to_start_h", "→ crew on site (travel)"),
    ("to_fixed_h", "→ marked fixed (repair)"),
    ("to_confirm_h", "→ confirmed by the readings"),
)


def downtime_plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Water-pump downtime per fault, split into its stages (simulated hours)."""
    pumps = [r for r in rows if r.get("kind") == "pump"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(4, len(pumps)) + 1.2))
    labels = [f"{r['device'].removesuffix('-pump')} ({r['event']})" for r in pumps]
    left = [0.0] * len(pumps)
    for key, label in STAGES:
        ends = [r.get(key) for r in pumps]
        widths = [max(0.0, e - s) if e is not None else 0.0 for e, s in zip(ends, left, strict=True)]
        ax.barh(labels, widths, left=left, label=label)
        left = [s + w for s, w in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("simulated hours from the first abnormal reading")
    ax.set_title("Water-pump downtime per fault")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def shortage_plot(cov: dict[str, Any], path: Path) -> None:
    """Essential (community, good) pairs under their minimum, hour by hour, with and without deliveries."""
    frame = pd.DataFrame(
        {
            "without deliveries (baseline)": cov["hourly_short_without"],
            "with the planner": cov["hourly_short_with"],
        }
    )
    frame.index = frame.index / 24 + 1 / 24
    fig, ax = plt.subplots(figsize=(9, 3.8))
    frame.plot(ax=ax, drawstyle="steps-post")
    ax.set_xlabel("simulated day")
    ax.set_ylabel("community x essential good\nunder its minimum")
    ax.set_title("Essential-goods shortage over the week")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return str(value)


def fault_table(rows: list[dict[str, Any]]) -> str:
    """The per-fault table: what the store shows for each scripted fault."""
    head = (
        "| # | device | scripted | at (h) | rule | abnormal→fault (sim min) | fault→task (s) | "
        "fault→alert (s) "
        "| →accepted (h) | →on site (h) | →fixed (h) | →confirmed (h) | declines |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for n, r in enumerate(rows, start=1):
        cells = [
            n,
            r["device"],
            r["event"],
            r["at_h"],
            r.get("rule") or "**not detected**",
            r.get("to_fault_sim_min"),
            r.get("to_task_s"),
            r.get("fault_to_alert_s"),
            r.get("to_accept_h"),
            r.get("to_start_h"),
            r.get("to_fixed_h"),
            r.get("to_confirm_h"),
            r.get("declines"),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return head + "\n".join(lines) + "\n"


def board_section(brd: dict[str, Any] | None) -> str:
    """The task board's figures and each sector's goals this month: sums and sentences, never a name."""
    if brd is None:
        return ""
    figures = [
        ("tasks posted (by sector)", f"{brd['tasks']} ({_by_sector(brd['tasks_by_sector'])})"),
        (
            f"places (slot x shift) from {brd['period_from'][:16]} to {brd['period_to'][:16]}: filled",
            f"{brd['filled']} of {brd['places']} ({_share(brd['filled_share'])})",
        ),
        (
            "of those, places whose shift started within the run: filled / done",
            f"{brd['filled_in_run']} of {brd['places_in_run']} ({_share(brd['filled_in_run_share'])})"
            f" / {brd['places_done']}",
        ),
        (
            "suggestions made / accepted / declined / lapsed / still waiting",
            " / ".join(str(brd[k]) for k in ("suggested", "accepted", "declined", "lapsed", "waiting")),
        ),
        (
            "places taken unasked (urgent or browsing) / given back",
            f"{brd['taken_unasked']} / {brd['released']}",
        ),
        ("urgent alerts sent (shifts alerted)", f"{brd['urgent_alerts']} ({brd['urgent_shifts']})"),
        (
            "board hours held (suggested or taken) / given (done)",
            f"{brd['hours_held']} / {brd['hours_given']}",
        ),
        ("members with board work", brd["members_with_board_work"]),
        ("members over their weekly pledge in a week with board work", f"**{brd['members_over_pledge']}**"),
        (
            "... counting done jobs at their actual hours (jobs that ran long)",
            brd["members_worked_past_pledge"],
        ),
    ]
    table = "\n".join(f"| {k} | {_cell(v)} |" for k, v in figures)
    columns = ("tasks", "places", "filled", "places_in_run", "filled_in_run")
    sectors = "\n".join(
        f"| {s} | " + " | ".join(str(r[c]) for c in columns) + " |" for s, r in brd["by_sector"].items()
    )
    goals = []
    for row in brd["progress"]:
        goals.append(
            f"| **{row['sector']}** | need minimums held | {row['stock_goals']} | {row['stock_met']} | "
            f"{_cell(row['stock_met'] >= row['stock_goals'])} | {row['sentence']} |"
            if row["stock_goals"]
            else f"| **{row['sector']}** | | | | | {row['sentence']} |"
        )
        for g in row["goals"]:
            unit = "hours" if g["kind"] == "hours" else "places filled"
            goals.append(
                f"| | {unit}, {g['community']} | {g['target']:g} | {g['achieved']:g} | {_cell(g['met'])} | |"
            )
    goal_rows = "\n".join(goals) or "| no goals set | | | | | |"
    return f"""## Task board and sector goals

Beside repairs and deliveries, the board holds the work of every sector that guilds, assemblies and members
post (here the sample tasks of gateway/store/sample_board.py). A **place** is one slot of one shift; the
period counts the shifts starting in the run and the week after it, the week the matcher suggests people
for. Suggestions and urgent alerts are the planner's board matcher's, answered by the simulated members;
places taken unasked are urgent places people answered and places found browsing the board. Every place
was taken through gateway/store/board.py, which checks the person's skill, weekly pledge and year's offer.

| figure | value |
|---|---|
{table}

| sector | tasks | places | filled | places in the run | filled in the run |
|---|---|---|---|---|---|
{sectors}

Each sector's goals this month, as the dashboard shows them (dashboard/read/progress.py): the need
minimums of the sector's goods held now, and the hours and places-filled goals the region set (hours
accepted or given in the month, places taken or done). Sums only.

| sector | goal | target | achieved | met | progress |
|---|---|---|---|---|---|
{goal_rows}
"""


def _by_sector(counts: dict[str, int]) -> str:
    return ", ".join(f"{s} {n}" for s, n in counts.items())


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def write_report(path: Path, context: dict[str, Any]) -> None:
    """Write the Markdown report and its two PNGs next to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cov, vol, msg, figures = (
        context[k] for k in ("rows", "coverage", "volunteering", "messages", "figures")
    )
    stem = path.stem
    downtime_png, shortage_png = (
        path.with_name(f"{stem}_downtime.png"),
        path.with_name(f"{stem}_shortage.png"),
    )
    downtime_plot(rows, downtime_png)
    shortage_plot(cov, shortage_png)
    hours = "\n".join(
        f"| {sector} | {v['hours']} | {v['members']} | {v['max_member_h']} | {_cell(v['gini'])} |"
        for sector, v in vol["by_sector"].items()
    )
    roles = "\n".join(
        f"| {r} | {v['members']:g} | {v['pledged_h']} | {v['load_h']} | {v['given_h']} |"
        for r, v in vol["by_roles"].items()
    )
    over = (
        "\n".join(
            f"| {o['name']} | {o['community']} | {o['roles']} | {o['pledge_h']:g} | {o['week_h']} "
            f"| {o['ratio']} |"
            for o in vol["over_pledge"]
        )
        or "| nobody | | | | | |"
    )
    by_good = (
        ", ".join(
            f"{g} {n} ({cov['covered_days_by_good'].get(g, 0)} covered)"
            for g, n in cov["shortage_days_by_good"].items()
        )
        or "none"
    )
    dead = ", ".join(f"{reason}: {n}" for reason, n in sorted(msg["dead_letters"].items())) or "none"
    summary = [
        ("scripted faults", figures["faults"]),
        (
            "detected / tasked / alerted",
            f"{figures['faults_detected']} / {figures['faults_tasked']} / {figures['faults_alerted']}",
        ),
        (
            "repaired (marked fixed) / confirmed by readings",
            f"{figures['faults_repaired']} / {figures['faults_confirmed']}",
        ),
        ("tasks closed without confirmation", figures["tasks_closed_unconfirmed"]),
        ("faults in the store not in the scenario", figures["faults_not_in_scenario"]),
        (
            "fault → alert on the member's topic, median / worst (real s)",
            f"{figures['fault_to_alert_median_s']} / {figures['fault_to_alert_max_s']}",
        ),
        ("first abnormal reading → accepted, median (sim h)", figures["to_accept_median_h"]),
        (
            "first abnormal reading → confirmed repair, median / worst (sim h)",
            f"{figures['to_confirm_median_h']} / {figures['to_confirm_max_h']}",
        ),
        (
            "essential shortage-days without deliveries",
            f"{cov['shortage_days_baseline']} of {cov['need_days']} need-days",
        ),
        (
            "of those covered with the planner",
            f"{cov['shortage_days_covered']} (**{_cell(cov['essential_coverage'])}**)",
        ),
        (
            "need-days met: baseline / with the planner",
            f"{cov['baseline_coverage']} / {cov['met_share_with_planner']}",
        ),
        ("km driven (routes with a stop done)", vol["km_driven"]),
        ("km driven per covered shortage-day", figures["km_per_covered_day"]),
        (
            "hours given (done) / load (offered + reserved + done) / pledged over the period",
            f"{vol['hours_given']} / {vol['hours_load']} / {vol['hours_pledged']}",
        ),
        (
            "members over their weekly pledge / largest week's load ratio / Gini of load ratios",
            f"**{vol['members_over_pledge']}** / {_cell(vol['max_load_ratio'])} / {_cell(vol['load_gini'])}",
        ),
        ("readings sent / stored", f"{msg['readings_sent']} / {msg['readings_stored']}"),
        (
            "outbox rows / published; member messages / heard",
            f"{msg['outbox_rows']} / {msg['outbox_published']}; {msg['member_messages']} / "
            f"{msg['member_messages_heard']}",
        ),
        ("dead letters by reason", dead),
    ]
    table = "\n".join(f"| {k} | {_cell(v)} |" for k, v in summary)
    text = f"""# A week in the region

{context["preface"]}

## Summary

| figure | value |
|---|---|
{table}

## Per fault

Real seconds for the machine's part (fault → task → alert); simulated hours from the fault's first abnormal
reading for the people's part (answer, travel, repair) and the confirmation by the readings.

{fault_table(rows)}
![Water-pump downtime per fault]({downtime_png.name})

## Essential goods

{context["coverage_note"]}
Baseline shortage-days by good (covered with the planner): {by_good}.

![Essential-goods shortage with and without the planner]({shortage_png.name})

## Volunteers

Every figure here is read from the hours ledger (`hours_entries`, written by gateway/store/hours.py): one
entry per person and piece of work, offered when planned, reserved when accepted, done with the actual
hours (a repair from acceptance to "fixed", a route from its first pickup to its last stop), or released.
A person's **load** in a simulated week is their offered, reserved and done hours of work starting in it;
their **load ratio** is that over their weekly pledge (`hours_per_week` in the region file). Each person
counts once, whatever their roles. {vol["members_with_pledge"]} of {vol["members"]} members have a pledge;
{vol["members_working"]} were asked for work. Pledged hours are the weekly pledges times the
{vol["weeks"]:g} simulated weeks. The Gini compares load ratios over the period among everyone with a
pledge (0: even).
{vol["members_over_sector_offer"]} members were asked for more in a sector than they offer it in a year.
Ledger entries by state: {", ".join(f"{k} {n}" for k, n in vol["entries_by_state"].items()) or "none"}.

| roles | members | pledged h | load h | given h |
|---|---|---|---|---|
{roles}

Hours given by work sector (Gini over everyone with a pledge):

| sector | hours | members | most by one member | Gini |
|---|---|---|---|---|
{hours}

Members over their weekly pledge, the ten largest ratios. Done work counts its actual hours, as the
planners count it: time a job did not take is offered again. Counted instead at the hours each done job
was planned for, {vol["members_over_pledge_planned"]} members would pass their pledge (a diagnostic of that
re-offered time, not a limit anyone's week went over).

| member | community | roles | pledge h/week | largest week h | ratio |
|---|---|---|---|---|---|
{over}

Simulated drivers accept a route before they drive it and drive only the stops they accepted; a route the
planner revised or withdrew before they answered is left alone.

{board_section(context.get("board"))}
## Run

{context["run_note"]}

```json
{context["json"]}
```
"""
    path.write_text(text, encoding="utf-8")
