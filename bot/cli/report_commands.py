"""`checkin report`: the monthly compliance report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.base import app, fail, office_language, out, runtime, say
from bot.report_view import cjk_font, draw_chart, month_status, print_report, report_csv, report_xlsx
from handlers import compliance
from storage.db import session_scope


@app.command()
def report(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    township: Annotated[str | None, typer.Option("--township")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the figures to this CSV file (UTF-8 "
                                                               "with a BOM: Excel opens it as written)")] = None,
    xlsx_file: Annotated[Path | None, typer.Option("--xlsx", help="Also write them as an Excel workbook")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also draw the rates per township to this PNG")] = None,
) -> None:
    """Monthly compliance report, per township and for the county."""
    rt = runtime()
    try:
        month = compliance.normalise_month(month)
    except ValueError:
        fail(say("report.bad_month", value=repr(month)), 2)
    with session_scope(rt.engine) as session:
        lines = compliance.report(session, month, zone=rt.settings.zone, policy=rt.policy,
                                  now=rt.clock.now(), township=township)
    target = rt.policy.report_figures.target_per_mille
    status = month_status(month, rt.clock.now(), rt.settings.zone)
    lang = office_language()
    print_report(out, lines, month, township, target, status=status, lang=lang)
    if status == "future":
        return
    if csv_file is not None:
        csv_file.write_bytes(report_csv(lines, month))
        out.print(say("base.wrote", path=csv_file), markup=False)
    if xlsx_file is not None:
        xlsx_file.write_bytes(report_xlsx(lines, month))
        out.print(say("base.wrote", path=xlsx_file), markup=False)
    if chart is not None:
        labels = draw_chart(lines, month, target, chart, font=cjk_font(), lang=lang)
        towns = [line.township for line in lines[:-1]]
        if labels == towns:
            out.print(say("base.wrote", path=chart), markup=False)
        else:  # no font here writes the names: the key, and how to get one
            key = ", ".join(f"{label} = {town}" for label, town in zip(labels, towns, strict=True))
            out.print(say("report.chart_key", path=chart, key=key), markup=False)
