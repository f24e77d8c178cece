"""The console's routes under /console: sign in, the inbox, the caseload, a person's page and their actions.

Every page and action asks the handlers' own functions (scopes, alert actions, messages to a person, the life of
a case) and writes the same audit entries as the chat, with the signed-in officer as the actor. A person outside
the officer's scope is a 404, never a refusal that confirms the case exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from markupsafe import Markup
from sqlmodel import Session, col, func, select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot.office import auth
from bot.office.admin import admin_routes
from bot.office.page import LANG_COOKIE, PAGE, Page, about, cookie_language, month_of, page_number, parse_date
from bot.office.views import Spot, area_map, month_calendar
from content.catalog import LANGUAGES, text
from content.formatting import day_and_time, phone_national
from content.refusals import said
from handlers import case_life, community_service, escalation, formal_warnings, leave, officer_accounts, study
from handlers.case_life import CaseError
from handlers.contract import Reply
from handlers.delivery import outcome
from handlers.officer import can_see, matches, relay, visible_people
from storage import audit
from storage.db import session_scope
from storage.models import (
    AuditEntry,
    Category,
    EndReason,
    Escalation,
    Leave,
    LeaveState,
    Level,
    LocationCheck,
    Message,
    Obligation,
    ObligationKind,
    Officer,
    Role,
    ServiceAttendance,
    ServiceSession,
    Status,
    Supervisee,
    Warning_,
    WrittenReport,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent


def office_routes(rt, kick: Callable[[], None] | None = None) -> tuple[list, dict]:
    """The console's routes, to mount on the service's Starlette app, and its error handlers. `kick` drains the
    outbox at once after an action (the service's stack.kick), so that what it owes people goes now."""
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html
    zone = rt.settings.zone
    secure = bool(rt.settings.public_url and rt.settings.public_url.startswith("https://"))

    def render(page: Page | None, name: str, status: int = 200, **values) -> HTMLResponse:
        lang = page.lang if page else (values.get("lang") or rt.settings.language)
        values.setdefault("flash", [])
        return templates.TemplateResponse(page.request if page else values.pop("request"), name, {
            "t": lambda key, **p: text(lang, f"console.{key}", **p), "text": lambda key, **p: text(lang, key, **p),
            "lang": lang, "officer": page.officer if page else None, "csrf": page.web.csrf if page else "",
            "when": lambda at: day_and_time(at, zone, lang) if at else "-", "phone": phone_national,
            **values}, status_code=status)

    def signed_in(handler: Callable[[Page], Awaitable[Response]], *, admin: bool = False):
        async def endpoint(request: Request) -> Response:
            with session_scope(rt.engine) as db:
                found = auth.current(db, request.cookies.get(auth.COOKIE), rt.clock.now())
                if found is None:
                    return RedirectResponse(f"/console/login?next={request.url.path}", status_code=303)
                web, officer = found
                page = Page(request, db, officer, web, rt)
                if admin and officer.role != Role.admin:
                    raise HTTPException(404)
                if request.method == "POST":
                    form = await request.form()
                    if not auth.csrf_ok(web, form.get("csrf")):
                        log.warning("console: form without a valid CSRF token from officer %s", officer.id)
                        return HTMLResponse(page.t("csrf_refused"), status_code=403)
                    page.form = form
                response = await handler(page)
            if request.method == "POST" and kick is not None:
                kick()  # committed: send what the action queued
            return response
        return endpoint

    # ---- signing in -------------------------------------------------------------------------

    async def login_form(request: Request) -> Response:
        lang = cookie_language(request, rt.settings.language)
        return render(None, "login.html", request=request, lang=lang, error=None,
                      next=request.query_params.get("next", "/console/"))

    async def login(request: Request) -> Response:
        form = await request.form()
        now = rt.clock.now()
        address = request.client.host if request.client else "-"
        lang = cookie_language(request, rt.settings.language)
        target = str(form.get("next") or "/console/")
        if not target.startswith("/console/"):
            target = "/console/"
        with session_scope(rt.engine) as db:
            officer = auth.find_officer(db, str(form.get("login", "")), rt.settings.phone_region)
            officer_id = officer.id if officer is not None else None
            if auth.throttled(db, officer_id, address, now):
                error = "throttled"
            elif officer is None or not officer.active \
                    or not officer_accounts.password_ok(officer, str(form.get("password", ""))):
                error = "wrong"
            elif auth.needs_totp(officer) and not auth.totp_ok(officer, str(form.get("code", "")), now):
                error = "totp"
            else:
                error = None
            auth.record_attempt(db, officer_id, address, error is None, now)
            audit.append(db, actor=f"officer:{officer_id}" if officer_id else "web", now=now,
                         action="web.login" if error is None else "web.login_failed",
                         subject=f"officer:{officer_id}" if officer_id else None,
                         details=None if error is None else {"reason": error})
            if error is not None:
                log.info("console: sign-in refused (%s) for officer %s", error, officer_id)
                return render(None, "login.html", status=401 if error != "throttled" else 429, request=request,
                              lang=lang, error=error, next=target)
            token = auth.start_session(db, officer, now)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(auth.COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/console",
                            max_age=int(auth.SESSION_MAX.total_seconds()))
        return response  # (its audit entry is written with the attempt above)

    def _signed_in_response(db: Session, officer: Officer, now, how: str) -> Response:
        audit.append(db, actor=f"officer:{officer.id}", now=now, action="web.login", subject=f"officer:{officer.id}",
                     details={"by": how})
        token = auth.start_session(db, officer, now)
        response = RedirectResponse("/console/", status_code=303)
        response.set_cookie(auth.COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/console",
                            max_age=int(auth.SESSION_MAX.total_seconds()))
        return response

    async def link(request: Request) -> Response:
        """A one-time link from the bot's /web: signs in at once; an administrator gives the TOTP code first."""
        token, now = request.path_params["token"], rt.clock.now()
        lang = cookie_language(request, rt.settings.language)
        with session_scope(rt.engine) as db:
            officer = officer_accounts.use_link(db, token, now, consume=False)
            if officer is None:
                audit.append(db, actor="web", now=now, action="web.login_failed", details={"reason": "link"})
                return render(None, "login.html", status=401, request=request, lang=lang, error="link",
                              next="/console/")
            if auth.needs_totp(officer):
                code = (await request.form()).get("code") if request.method == "POST" else None
                if code is None or not auth.totp_ok(officer, str(code), now):
                    return render(None, "link_totp.html", status=200 if code is None else 401, request=request,
                                  lang=lang, error="totp" if code is not None else None, token=token)
            officer_accounts.use_link(db, token, now)
            return _signed_in_response(db, officer, now, "link")

    async def logout(page: Page) -> Response:
        auth.end_session(page.db, page.request.cookies.get(auth.COOKIE), page.now)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/console")
        return response

    async def language(request: Request) -> Response:
        lang = request.path_params["lang"]
        response = RedirectResponse(request.headers.get("referer") or "/console/", status_code=303)
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, httponly=True, samesite="lax", secure=secure, path="/console",
                                max_age=365 * 86400)
        return response

    # ---- the inbox ----------------------------------------------------------------------------

    async def inbox(page: Page, flash: list[str] | None = None) -> Response:
        db, officer = page.db, page.officer
        alerts = db.exec(escalation.open_alerts(officer).order_by(Escalation.opened_at, Escalation.id)
                         .limit(PAGE)).all()
        total = db.exec(select(func.count()).select_from(escalation.open_alerts(officer).subquery())).one()
        week = page.now - timedelta(days=7)
        notes = db.exec(select(Message).where(Message.officer_id == officer.id, Message.direction == "out",
                                              Message.kind == "contact", Message.created_at >= week)
                        .order_by(col(Message.created_at).desc()).limit(PAGE)).all()
        ids = visible_people(db, officer)
        reports_q = select(WrittenReport, Supervisee).join(Supervisee, Supervisee.id == WrittenReport.supervisee_id) \
            .where(WrittenReport.submitted_at >= week)
        if ids is not None:
            reports_q = reports_q.where(col(WrittenReport.supervisee_id).in_(ids or [0]))
        reports = db.exec(reports_q.order_by(col(WrittenReport.submitted_at).desc()).limit(PAGE)).all()
        note_people = {m.id: db.get(Supervisee, pid) if (pid := about(m)) else None for m in notes}
        waiting = [(lv, p) for lv, p in db.exec(
            select(Leave, Supervisee).join(Supervisee, Supervisee.id == Leave.supervisee_id)
            .where(Leave.state == LeaveState.requested).order_by(Leave.requested_at).limit(200)).all()
            if can_see(db, officer, p)][:PAGE]  # the same scope as the chat's /leaves
        return render(page, "inbox.html", alerts=alerts, total=total, notes=notes, note_people=note_people,
                      reports=reports, waiting=waiting, flash=flash or [])

    async def leave_decision(page: Page) -> Response:
        lv = page.db.get(Leave, int(page.request.path_params["leave_id"]))
        person = page.db.get(Supervisee, lv.supervisee_id) if lv else None
        decision = str(page.form.get("decision", ""))
        if person is None or not can_see(page.db, page.officer, person) or decision not in ("approve", "refuse"):
            raise HTTPException(404)
        if decision == "approve":  # as the chat's 批准 N: the area moves when the destination is a known area
            decision = "move" if rt.areas.get(lv.destination_area) else "suspend"
        try:
            replies = leave.decide(page.db, lv, page.officer, decision, page.now, rt.areas,
                                   str(page.form.get("note", "")).strip())
        except leave.LeaveError as exc:
            return await inbox(page, [exc.render(page.lang)])
        done = text(page.lang, "leave.decided", id=lv.id, officer=page.officer.name,
                    decision=text(page.lang, f"leave.decided_{lv.mode if lv.mode else lv.state}"))
        return await inbox(page, [done, *page.deliver(replies, f"leave{lv.id}")])

    async def alert_action(page: Page) -> Response:
        esc_id = int(page.request.path_params["esc_id"])
        action = str(page.form.get("action", ""))
        reason = str(page.form.get("reason", "")).strip()
        esc = page.db.get(Escalation, esc_id)
        if esc is None or not escalation.may_act(page.db, page.officer, esc) or action not in escalation.ACTIONS:
            raise HTTPException(404)
        if action == "excuse" and not reason:
            return await inbox(page, [page.t("reason_needed")])
        said = page.deliver(escalation.apply_action(page.context(), esc_id, action, reason), f"esc{esc_id}")
        return await inbox(page, said)

    # ---- the caseload -------------------------------------------------------------------------

    async def people(page: Page) -> Response:
        db, q = page.db, page.request.query_params
        query = select(Supervisee).where(col(Supervisee.purged_at).is_(None))
        ids = visible_people(db, page.officer)
        if ids is not None:
            query = query.where(col(Supervisee.id).in_(ids or [0]))
        in_scope = db.exec(query).all()
        townships = sorted({p.township for p in in_scope})
        filters = {k: q.get(k, "") for k in ("township", "level", "category", "status")}
        rows = [p for p in in_scope if all(not v or getattr(p, k) == v for k, v in filters.items())]
        words = q.get("q", "").strip()
        if words:
            rows = [p for p in rows if matches(p, words)]
        far_past = page.now - timedelta(days=365 * 50)
        rows.sort(key=lambda p: (p.last_contact_at or far_past, p.case_number))  # longest unheard first
        number = page_number(q.get("page", "1"))
        return render(page, "people.html", rows=rows[(number - 1) * PAGE:number * PAGE], total=len(rows),
                      number=number, pages=max(1, -(-len(rows) // PAGE)), words=words, filters=filters,
                      townships=townships, levels=list(Level), categories=list(Category), statuses=list(Status))

    # ---- one person ---------------------------------------------------------------------------

    async def person(page: Page, flash: list[str] | None = None) -> Response:
        db = page.db
        p = page.person(page.request.path_params["case"])
        number = page_number(page.request.query_params.get("page", "1"))
        total = db.exec(select(func.count()).select_from(Message).where(Message.supervisee_id == p.id)).one()
        thread = db.exec(select(Message).where(Message.supervisee_id == p.id)
                         .order_by(col(Message.created_at).desc(), col(Message.id).desc())
                         .offset((number - 1) * PAGE).limit(PAGE)).all()
        reports = db.exec(select(WrittenReport).where(WrittenReport.supervisee_id == p.id)
                          .order_by(col(WrittenReport.submitted_at).desc()).limit(12)).all()
        alerts = db.exec(select(Escalation).where(Escalation.supervisee_id == p.id)
                         .order_by(col(Escalation.opened_at).desc()).limit(20)).all()
        senior = page.officer.role in (Role.supervisor, Role.admin)
        officers = db.exec(select(Officer).where(Officer.active.is_(True),  # whom a transfer may go to
                                                 col(Officer.role).in_([Role.assistant, Role.supervisor]))
                           .order_by(Officer.township, Officer.id)).all() if senior else []
        assigned = db.get(Officer, p.officer_id)
        month = month_of(page.request.query_params.get("month", ""), page.now.astimezone(zone).date())
        start = datetime(month.year, month.month, 1, tzinfo=zone)
        end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=zone)
        due = {ob.due_at.astimezone(zone).day: ob.state for ob in db.exec(select(Obligation).where(
            Obligation.supervisee_id == p.id, Obligation.kind == ObligationKind.checkin,
            Obligation.due_at >= start, Obligation.due_at < end))}
        hours = {"study": study.minutes_credited(db, start, end, [p.id]).get(p.id, 0),
                 "service": community_service.minutes_credited(db, start, end, [p.id]).get(p.id, 0)}
        points = db.exec(select(LocationCheck).where(LocationCheck.supervisee_id == p.id)
                         .order_by(col(LocationCheck.taken_at).desc()).limit(30)).all()
        spots = [Spot(pt.latitude, pt.longitude, pt.inside, day_and_time(pt.taken_at, zone, page.lang))
                 for pt in points]
        township = rt.areas.find(p.township)  # their township drawn darker
        svg, far = area_map(rt.areas, spots, page.lang, home=township.key if township else None)
        history = db.exec(select(AuditEntry).where(AuditEntry.supervisee_id == p.id)
                          .order_by(col(AuditEntry.id).desc()).limit(30)).all()
        return render(page, "person.html", p=p, thread=thread, total=total, number=number,
                      pages=max(1, -(-total // PAGE)), reports=reports, alerts=alerts, officers=officers,
                      assigned=assigned, levels=list(Level), reasons=list(EndReason), flash=flash or [],
                      channels=case_life.CHANNELS, outcome=lambda m: outcome(m, page.lang, zone),
                      senior=senior, today=page.now.astimezone(zone).date(),
                      weeks=month_calendar(month.year, month.month, due, page.now.astimezone(zone).date()),
                      month=month, previous=(start - timedelta(days=1)).strftime("%Y-%m"),
                      following=end.strftime("%Y-%m"), hours=hours,
                      targets={"study": rt.policy.study.monthly_minutes, "service": rt.policy.service.monthly_minutes},
                      warnings=formal_warnings.ledger(db, p.id),
                      leaves=db.exec(select(Leave).where(Leave.supervisee_id == p.id)
                                     .order_by(col(Leave.requested_at).desc()).limit(10)).all(),
                      svg=Markup(svg), far=far, history=history)

    async def person_action(page: Page) -> Response:
        p = page.person(page.request.path_params["case"])
        action, form, ctx = page.request.path_params["action"], page.form, page.context()
        try:
            if action == "say":
                body = str(form.get("text", "")).strip()
                if not body:
                    return await person(page, [page.t("text_needed")])
                replies = relay(ctx, p, body)
            elif action == "pause":
                replies = case_life.pause(page.db, p, parse_date(form.get("start")), parse_date(form.get("end")),
                                          str(form.get("reason", "")), actor=page.actor(), now=page.now, zone=zone)
                replies = [Reply(text(page.lang, "case.done_pause", name=p.name, case_number=p.case_number,
                                      start=p.paused_from.isoformat(), end=p.paused_until.isoformat())), *replies]
            elif action == "resume":
                replies = case_life.resume(page.db, p, actor=page.actor(), now=page.now, zone=zone)
                replies = [Reply(text(page.lang, "case.done_resume", name=p.name, case_number=p.case_number)),
                           *replies]
            elif action == "level":
                replies = case_life.set_level(page.db, p, str(form.get("level", "")), actor=page.actor(),
                                              now=page.now)
                replies = [Reply(text(page.lang, "case.done_level", name=p.name, case_number=p.case_number,
                                      level=text(page.lang, f"level.{p.level}"))), *replies]
            elif action == "channel":
                replies = case_life.set_channel(page.db, p, str(form.get("channel", "")), actor=page.actor(),
                                                now=page.now)
                replies = [Reply(text(page.lang, "case.done_channel", name=p.name, case_number=p.case_number,
                                      channel=text(page.lang, f"delivery.channel_{p.preferred_channel}"))), *replies]
            elif action == "warn":
                formal_warnings.record(page.db, page.officer, p, str(form.get("reason", "")), page.now, zone)
                replies = [Reply(text(page.lang, "console.warning_recorded", name=p.name))]
            elif action in ("correct", "withdraw"):
                entry = page.db.get(Warning_, int(form.get("warning") or 0))
                if entry is None or entry.supervisee_id != p.id:
                    raise HTTPException(404)
                formal_warnings.amend(page.db, page.officer, entry.id, str(form.get("reason", "")), page.now, zone,
                                      withdraw=action == "withdraw")
                key = "console.warning_withdrawn" if action == "withdraw" else "console.warning_corrected"
                replies = [Reply(text(page.lang, key, id=entry.id))]
            elif action in ("transfer", "end"):
                if page.officer.role not in (Role.supervisor, Role.admin):
                    raise HTTPException(404)
                if action == "transfer":
                    to = page.db.get(Officer, int(form.get("officer") or 0))
                    if to is None:
                        raise CaseError("no_officer", value=form.get("officer") or "-")
                    replies = case_life.transfer(page.db, p, to, actor=page.actor(), now=page.now)
                    replies = [Reply(text(page.lang, "case.done_transfer", name=p.name, case_number=p.case_number,
                                          officer=to.name, township=to.township)), *replies]
                else:
                    reason = str(form.get("reason", ""))
                    replies = case_life.end(page.db, p, reason, str(form.get("note", "")), actor=page.actor(),
                                            now=page.now, zone=zone)
                    replies = [Reply(text(page.lang, "case.done_end", name=p.name, case_number=p.case_number,
                                          reason=text(page.lang, f"end_reason.{reason}"))), *replies]
            else:
                raise HTTPException(404)
        except CaseError as exc:
            return await person(page, [exc.render(page.lang)])
        except formal_warnings.WarningError as exc:
            return await person(page, [exc.render(page.lang)])
        said = page.deliver(replies, f"{action}{p.id}")
        if not can_see(page.db, page.officer, p):  # transferred out of this officer's scope
            return await inbox(page, said)
        return await person(page, said)

    # ---- community service ------------------------------------------------------------------

    async def service(page: Page, flash: list[str] | None = None) -> Response:
        db, officer = page.db, page.officer
        since = page.now - timedelta(days=30)
        query = select(ServiceSession).where(ServiceSession.ends_at >= since).order_by(ServiceSession.starts_at)
        if officer.role != Role.admin:
            query = query.where(ServiceSession.township == officer.township)
        sessions = db.exec(query.limit(100)).all()
        rows = {}
        for svc in sessions:
            rows[svc.id] = [(a, p) for a, p in db.exec(
                select(ServiceAttendance, Supervisee).join(Supervisee, Supervisee.id == ServiceAttendance.supervisee_id)
                .where(ServiceAttendance.session_id == svc.id).order_by(Supervisee.case_number)).all()
                if can_see(db, officer, p)]
        return render(page, "service.html", sessions=sessions, rows=rows, flash=flash or [],
                      tomorrow=(page.now.astimezone(zone) + timedelta(days=1)).date())

    async def service_create(page: Page) -> Response:
        f = page.form
        try:
            day = date.fromisoformat(str(f.get("day", "")))
            starts = datetime.combine(day, datetime.strptime(str(f.get("start", "")), "%H:%M").time(), tzinfo=zone)
            ends = datetime.combine(day, datetime.strptime(str(f.get("end", "")), "%H:%M").time(), tzinfo=zone)
            cases = [c.strip() for c in str(f.get("cases", "")).replace("，", ",").split(",") if c.strip()]
            svc = community_service.create(page.db, page.officer, rt.policy, place=str(f.get("place", "")),
                                           starts_at=starts, ends_at=ends, hours=float(f.get("hours") or 0),
                                           case_numbers=cases, now=page.now)
        except (ValueError, community_service.ServiceError) as exc:
            return await service(page, [page.t("service_refused", reason=said(exc, page.lang))])
        return await service(page, [page.t("service_created", id=svc.id, code=svc.code, count=len(cases))])

    async def service_verify(page: Page) -> Response:
        attendance_id = int(page.request.path_params["attendance_id"])
        hours = str(page.form.get("hours", "")).strip()
        try:
            done = community_service.verify(page.db, page.officer, attendance_id, page.now,
                                            absent=page.form.get("result") == "absent",
                                            hours=float(hours) if hours else None)
        except (ValueError, community_service.ServiceError):
            raise HTTPException(404) from None
        who = page.db.get(Supervisee, done.supervisee_id)
        return await service(page, [page.t("service_" + done.state, name=who.name, hours=f"{done.hours:g}")])

    async def recording(page: Page) -> Response:
        """A spoken report's audio, fetched from Twilio and passed on: only to an officer who may see the person,
        never a link to Twilio; each listening is in the audit log."""
        db, s = page.db, rt.settings
        report = db.get(WrittenReport, page.request.path_params["report_id"])
        person = db.get(Supervisee, report.supervisee_id) if report is not None else None
        if person is None or not report.recording_url or not can_see(db, page.officer, person) \
                or not (s.twilio_account_sid and s.twilio_auth_token):
            raise HTTPException(404)
        from bot.channels.voice import fetch_recording  # twilio's HTTP library: only where recordings are heard

        audio = await asyncio.to_thread(fetch_recording, s.twilio_account_sid, s.twilio_auth_token,
                                        s.twilio_api_base_url, report.recording_url)
        if audio is None:
            raise HTTPException(404)
        audit.append(db, actor=f"officer:{page.officer.id}", action="recording.listen", now=page.now,
                     supervisee_id=person.id, subject=report.receipt)
        return Response(audio, media_type="audio/mpeg", headers={"Cache-Control": "no-store"})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        lang = cookie_language(request, rt.settings.language)
        return HTMLResponse(text(lang, "console.not_found"), status_code=exc.status_code)

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", signed_in(logout), methods=["POST"]),
        Route("/lang/{lang}", language, methods=["GET"]),
        Route("/link/{token}", link, methods=["GET", "POST"]),
        Route("/", signed_in(inbox), methods=["GET"]),
        Route("/alerts/{esc_id:int}", signed_in(alert_action), methods=["POST"]),
        Route("/leave/{leave_id:int}", signed_in(leave_decision), methods=["POST"]),
        Route("/people", signed_in(people), methods=["GET"]),
        Route("/service", signed_in(service), methods=["GET"]),
        Route("/service", signed_in(service_create), methods=["POST"]),
        Route("/service/attendance/{attendance_id:int}", signed_in(service_verify), methods=["POST"]),
        Route("/people/{case}", signed_in(person), methods=["GET"]),
        Route("/recording/{report_id:int}", signed_in(recording), methods=["GET"]),
        Route("/people/{case}/{action}", signed_in(person_action), methods=["POST"]),
        *admin_routes(rt, signed_in, render),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="office_static"),
    ]
    return [Mount("/console", routes=routes)], {HTTPException: not_found}
