"""The console's administration pages (administrators only; anyone else gets a 404): officers, the roster upload,
the compliance report with its chart and downloads, the audit trail. The same functions as the CLI's."""

from __future__ import annotations

import hashlib
import json
import secrets

from sqlmodel import col, select
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.report_view import REPORT_COLUMNS, month_status, report_csv, report_xlsx
from content.catalog import LANGUAGES
from content.refusals import said
from content.sms import segments
from handlers import compliance, greetings, officer_accounts
from handlers.roster import import_roster
from storage import audit
from storage.models import AuditEntry, Category, Level, Officer, Role, Supervisee

MAX_UPLOAD = 5 * 1024 * 1024  # a county's roster is a few hundred kB


def admin_routes(rt, signed_in, render) -> list[Route]:
    zone = rt.settings.zone

    # ---- officers ----------------------------------------------------------------------------

    async def officers(page, flash: list[str] | None = None) -> Response:
        rows = page.db.exec(select(Officer).order_by(Officer.township, Officer.id)).all()
        return render(page, "admin_officers.html", rows=rows, roles=list(Role), languages=LANGUAGES,
                      successors=[o for o in rows if o.active and o.role != Role.admin], flash=flash or [])

    async def officer_add(page) -> Response:
        f = page.form
        try:
            officer = officer_accounts.add(
                page.db, name=str(f.get("name", "")), township=str(f.get("township", "")),
                role=str(f.get("role", "assistant")), now=page.now, actor=f"officer:{page.officer.id}",
                region=rt.settings.phone_region, phone=str(f.get("phone", "")).strip() or None,
                telegram_id=int(f["telegram_id"]) if str(f.get("telegram_id", "")).strip().isdigit() else None,
                supervisor_id=int(f["supervisor"]) if str(f.get("supervisor", "")).strip().isdigit() else None,
                language=str(f.get("language", "zh-CN")))
        except officer_accounts.AccountError as exc:
            return await officers(page, [said(exc, page.lang)])
        return await officers(page, [page.t("officer_added", id=officer.id, name=officer.name)])

    async def officer_edit(page) -> Response:
        officer = page.db.get(Officer, int(page.request.path_params["officer_id"]))
        if officer is None:
            return await officers(page, [page.t("no_such_officer")])
        f = page.form
        raw = {k: (str(f.get(k, "")).strip() or None) for k in ("name", "township", "role", "language", "phone",
                                                               "supervisor_id", "telegram_id")}
        try:
            changes = officer_accounts.checked_changes(page.db, officer, raw, rt.settings.phone_region)
            changed = officer_accounts.edit(page.db, officer, changes, page.now, actor=f"officer:{page.officer.id}")
        except (officer_accounts.AccountError, ValueError) as exc:
            return await officers(page, [said(exc, page.lang)])
        return await officers(page, [page.t("officer_edited", name=officer.name, fields=", ".join(changed) or "-")])

    async def officer_deactivate(page) -> Response:
        officer = page.db.get(Officer, int(page.request.path_params["officer_id"]))
        successor = page.db.get(Officer, int(page.form["successor"])) \
            if str(page.form.get("successor", "")).isdigit() else None
        if officer is None:
            return await officers(page, [page.t("no_such_officer")])
        try:
            moved = officer_accounts.deactivate(page.db, officer, successor, page.now,
                                                actor=f"officer:{page.officer.id}")
        except officer_accounts.AccountError as exc:
            return await officers(page, [said(exc, page.lang)])
        return await officers(page, [page.t("officer_deactivated", name=officer.name, people=moved.people,
                                            alerts=moved.alerts)])

    async def officer_password(page) -> Response:
        officer = page.db.get(Officer, int(page.request.path_params["officer_id"]))
        if officer is None:
            return await officers(page, [page.t("no_such_officer")])
        temporary = secrets.token_urlsafe(9)  # shown once, here; the officer changes it with their administrator
        officer_accounts.set_password(page.db, officer, temporary, page.now, actor=f"officer:{page.officer.id}")
        return await officers(page, [page.t("password_reset", name=officer.name, password=temporary)])

    # ---- the roster ----------------------------------------------------------------------------

    async def roster_form(page) -> Response:
        return render(page, "admin_roster.html", result=None, filename=None)

    async def roster_upload(page) -> Response:
        upload = page.form.get("file")
        if upload is None or not hasattr(upload, "read"):
            return render(page, "admin_roster.html", result=None, filename=None, flash=[page.t("choose_file")])
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            return render(page, "admin_roster.html", result=None, filename=upload.filename,
                          flash=[page.t("file_too_big", mb=MAX_UPLOAD // 1024 // 1024)])
        dry = page.form.get("dry_run") == "1"
        savepoint = page.db.begin_nested()  # all or nothing, inside this request's transaction
        result = import_roster(page.db, data, now=page.now, region=rt.settings.phone_region,
                               default_language=rt.settings.language, dry_run=dry, actor=f"officer:{page.officer.id}")
        if dry or not result.ok:
            savepoint.rollback()
        else:
            savepoint.commit()
        if result.ok and not dry:
            audit.append(page.db, actor=f"officer:{page.officer.id}", action="roster.import", now=page.now,
                         details={"file": upload.filename, "created": result.created, "updated": result.updated,
                                  "unchanged": result.unchanged})
        return render(page, "admin_roster.html", result=result, filename=upload.filename, dry=dry)

    # ---- the report ----------------------------------------------------------------------------

    def _month(page) -> str:
        wanted = page.request.query_params.get("month", "")
        try:
            return compliance.normalise_month(wanted) if wanted else page.now.astimezone(zone).strftime("%Y-%m")
        except ValueError:
            return page.now.astimezone(zone).strftime("%Y-%m")

    def _lines(page, month: str):
        return compliance.report(page.db, month, zone=zone, policy=rt.policy, now=page.now)

    async def report(page) -> Response:
        month = _month(page)
        lines = _lines(page, month)
        target = rt.policy.report_figures.target_per_mille
        return render(page, "admin_report.html", month=month, lines=lines, columns=REPORT_COLUMNS[1:],
                      month_state=month_status(month, page.now, zone), target=target,
                      chart=_chart(lines[:-1], target))

    async def report_download(page) -> Response:
        month, kind = _month(page), page.request.path_params["kind"]
        lines = _lines(page, month)
        if kind == "xlsx":
            return Response(report_xlsx(lines, month), headers={
                "content-disposition": f'attachment; filename="checkin-report-{month}.xlsx"'},
                media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        return Response(report_csv(lines, month), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="checkin-report-{month}.csv"'})

    # ---- broadcasts ----------------------------------------------------------------------------

    def _audience(page) -> greetings.Audience:
        f = page.form if hasattr(page, "form") else page.request.query_params
        return greetings.Audience(*(str(f.get(k, "")).strip() or None for k in ("township", "level", "category")))

    async def broadcast_form(page, flash: list[str] | None = None, **values) -> Response:
        townships = sorted({t for t in page.db.exec(select(Supervisee.township).distinct()).all()})
        return render(page, "admin_broadcast.html", townships=townships, levels=list(Level),
                      categories=list(Category), languages=LANGUAGES, flash=flash or [],
                      texts=values.pop("texts", {}), chosen=values.pop("chosen", {}), **values)

    async def broadcast(page) -> Response:
        texts = {lang: str(page.form.get(f"text_{lang}", "")).strip() for lang in LANGUAGES}
        first = texts[LANGUAGES[0]]
        texts = {lang: t or first for lang, t in texts.items()}  # a language left empty gets the first one's text
        audience = _audience(page)
        chosen = audience.as_dict()
        problems = [f"{lang}: {p}" for lang, p in ((lang, greetings.free_text_problem(t)) for lang, t in texts.items())
                    if p]
        if problems:
            return await broadcast_form(page, problems, texts=texts, chosen=chosen)
        by_channel = greetings.audience_by_channel(page.db, audience)
        previews = {lang: (t.format(name="王伟" if lang.startswith("zh") else "Wang Wei", officer="李娜"),
                           segments(t.format(name="欧阳明华", officer="李娜娜")))
                    for lang, t in texts.items()}
        if page.form.get("action") != "send":
            return await broadcast_form(page, texts=texts, chosen=chosen, previews=previews, by_channel=by_channel,
                                        audience_total=sum(by_channel.values()))
        digest = hashlib.sha256(json.dumps([texts, chosen], ensure_ascii=False, sort_keys=True).encode()).hexdigest()
        key = f"broadcast:web:{page.now.astimezone(zone):%Y-%m-%d}:{digest[:16]}"
        result = greetings.enqueue_bulk(page.db, key=key, kind="broadcast", section="broadcast", template="web",
                                        now=page.now, audience=audience, texts=texts)
        audit.append(page.db, actor=f"officer:{page.officer.id}", action="broadcast.send", now=page.now,
                     details={"key": key, "queued": result.queued, "audience": chosen})
        return RedirectResponse(f"/console/admin/broadcast/progress?key={key}", status_code=303)

    async def broadcast_progress(page) -> Response:
        key = page.request.query_params.get("key", "")
        if not key.startswith("broadcast:"):
            return await broadcast_form(page)
        counts = greetings.progress(page.db, key)
        if page.request.query_params.get("format") == "json":
            return JSONResponse({"counts": counts, "total": sum(counts.values()),
                                 "done": sum(n for s, n in counts.items() if s not in ("queued", "sending"))})
        return render(page, "admin_broadcast_progress.html", key=key, counts=counts, total=sum(counts.values()),
                      done=sum(n for s, n in counts.items() if s not in ("queued", "sending")))

    # ---- the audit trail -----------------------------------------------------------------------

    async def audit_trail(page) -> Response:
        case = page.request.query_params.get("case", "").strip()
        query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(200)
        person = None
        if case:
            from storage import queries

            person = queries.supervisee_by_case(page.db, case)
            query = query.where(AuditEntry.supervisee_id == (person.id if person else -1))
        verdict = audit.verify(page.db)
        return render(page, "admin_audit.html", entries=page.db.exec(query).all(), verdict=verdict, case=case,
                      person=person)

    admin = {"admin": True}
    return [
        Route("/admin/officers", signed_in(officers, **admin), methods=["GET"]),
        Route("/admin/officers", signed_in(officer_add, **admin), methods=["POST"]),
        Route("/admin/officers/{officer_id:int}", signed_in(officer_edit, **admin), methods=["POST"]),
        Route("/admin/officers/{officer_id:int}/deactivate", signed_in(officer_deactivate, **admin),
              methods=["POST"]),
        Route("/admin/officers/{officer_id:int}/password", signed_in(officer_password, **admin), methods=["POST"]),
        Route("/admin/roster", signed_in(roster_form, **admin), methods=["GET"]),
        Route("/admin/roster", signed_in(roster_upload, **admin), methods=["POST"]),
        Route("/admin/report", signed_in(report, **admin), methods=["GET"]),
        Route("/admin/report.{kind:str}", signed_in(report_download, **admin), methods=["GET"]),
        Route("/admin/audit", signed_in(audit_trail, **admin), methods=["GET"]),
        Route("/admin/broadcast", signed_in(broadcast_form, **admin), methods=["GET"]),
        Route("/admin/broadcast", signed_in(broadcast, **admin), methods=["POST"]),
        Route("/admin/broadcast/progress", signed_in(broadcast_progress, **admin), methods=["GET"]),
    ]


def _chart(lines, target: float) -> dict:
    """Bars per township: the response rate (0-100 %) and lost contact (per mille, against the target)."""
    bars = []
    worst = max([target * 2] + [line.lost_per_mille or 0 for line in lines])
    for line in lines:
        bars.append({"township": line.township, "response": round((line.response_rate or 0) * 100, 1),
                     "lost": round(line.lost_per_mille or 0, 1),
                     "lost_width": round(100 * (line.lost_per_mille or 0) / worst, 1)})
    return {"bars": bars, "target_at": round(100 * target / worst, 1)}

