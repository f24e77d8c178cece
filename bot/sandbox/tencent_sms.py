"""A Tencent Cloud SMS API stand-in on loopback, for the tests and `checkin demo --sms tencent`.

It takes `SendSms` (API 2021-01-11) as Tencent Cloud does: a JSON POST whose
`Authorization` is TC3-HMAC-SHA256, checked here exactly as the service's SDK
computes it (the canonical request of the method, path, content type, host
and body hash; the key derived from the secret key, the date and the
service), so a wrong secret key, an unknown secret id or a stale timestamp is
refused with Tencent's error object. It knows the county's approved signature
and templates (their ids and texts), and refuses anything else as the real API
does (`FailedOperation.TemplateIncorrectOrUnapproved`, a wrong number of
variables, a variable over its length). It answers `Response.SendStatusSet`
per number with `RequestId`, can answer with frequency limits, a blacklisted
(unsubscribed) number or an invalid one, and as the phone network posts
replies and delivery receipts to the service's callbacks as Tencent Cloud
posts them (JSON, unsigned, on the secret path).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tencentcloud.common.sign import Sign

from bot.sandbox.loopback import LoopbackServer
from bot.sandbox.phones import SentMessages
from content.sms_templates import Templates

PART_MARK = re.compile(r" \(\d+/\d+\)$")  # a notice's "(2/3)"
SKEW_SECONDS = 300  # Tencent Cloud refuses a signature older or newer than five minutes


@dataclass
class Sms:
    """One message the service sent: its words (a notice's parts joined, without the notice's own words and part
    marks), and each SMS as the phone shows it (the signature in 【】, the approved text, the values)."""

    sid: str  # the first part's SerialNo
    to: str
    body: str
    template_ids: list[str]
    date: datetime
    session: str = ""
    texts: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)


class FakeTencentSms(SentMessages, LoopbackServer):
    """Tencent Cloud's SMS API and the phone network, on loopback."""

    UNDELIVERED = "MK:0005"  # a carrier's code in a receipt for a message not delivered

    def __init__(self, templates: Templates, *, secret_id: str = "AKID" + "0" * 32, secret_key: str = "test-key",
                 app_id: str = "1400000001", sign_name: str = "示例县司法局",
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.secret_id, self.secret_key, self.app_id, self.sign_name = secret_id, secret_key, app_id, sign_name
        self.now = now
        # The county's approved templates: id -> (text, the longest value a variable takes).
        self.approved = {t.id: (t.text, t.max_chars) for t in [*templates.notice.values(),
                                                               *templates.by_key.values()]}
        self.notice_ids = {t.id for t in templates.notice.values()}
        self.by_sid: dict[str, Sms] = {}
        self.faults: dict[str, list[str]] = defaultdict(list)  # number -> codes of the next sends
        self.requests: list[dict] = []
        self.refused: list[str] = []  # error codes of requests refused whole
        self.service_url: str | None = None
        self.callback_secret = "c" * 32
        self._serials = itertools.count(1)
        self._reply_time = 0
        self._notices: dict[tuple[str, str], Sms] = {}  # (the message's SessionContext, number) -> its notice
        SentMessages.__init__(self)
        LoopbackServer.__init__(self, Starlette(routes=[Route("/", self._api, methods=["POST"])]))

    @property
    def endpoint(self) -> str:
        """What goes into CHECKIN_TENCENT_SMS_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    # ---- on demand -----------------------------------------------------------------

    def fail_next(self, to: str, code: str, times: int = 1) -> None:
        """The next `times` sends to `to` get this per-number code (e.g. LimitExceeded.PhoneNumberDailyLimit)."""
        self.faults[to].extend([code] * times)

    # ---- the phone network's side --------------------------------------------------

    async def post_callback(self, kind: str, body, secret: str | None = None) -> httpx.Response:
        """POST `body` as JSON to the service's reply or status callback (on `secret`'s path)."""
        url = f"{self.service_url}/tencent/sms/{secret if secret is not None else self.callback_secret}/{kind}"
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(url, content=json.dumps(body, ensure_ascii=False).encode(),
                                     headers={"Content-Type": "application/json"})

    async def send_sms(self, from_: str, body: str, sid: str | None = None) -> httpx.Response:
        """A person replies to the county's messages (Tencent's reply callback: number without +86, a time)."""
        nation, mobile = ("86", from_[3:]) if from_.startswith("+86") else (from_[1:3], from_[3:])
        if sid is None:  # a second apart at least: the service takes the same words at the same second as one
            self._reply_time = max(int(time.time()), self._reply_time + 1)
        stamp = self._reply_time if sid is None else int(hashlib.sha256(sid.encode()).hexdigest()[:8], 16)
        return await self.post_callback("reply", {
            "extend": "", "mobile": mobile, "nationcode": nation, "sign": self.sign_name, "text": body,
            "time": stamp})

    async def report_status(self, sid: str, status: str, error_code: str | None = None) -> httpx.Response | None:
        """The carrier's receipt for message `sid`: delivered (SUCCESS) or not (FAIL, with the carrier's code).
        Tencent Cloud sends no other receipt: any other status (Twilio's `sent`) posts nothing."""
        msg = self.by_sid[sid]
        msg.statuses.append(status)
        if status not in ("delivered", "undelivered"):
            return None
        ok = status == "delivered"
        return await self.post_callback("status", [{
            "user_receive_time": self.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "nationcode": "86", "mobile": msg.to.removeprefix("+86"), "report_status": "SUCCESS" if ok else "FAIL",
            "errmsg": "DELIVRD" if ok else (error_code or "UNDELIV"), "description": "用户短信送达成功" if ok else
            "用户短信未送达", "sid": sid}])

    # ---- the API -----------------------------------------------------------------------

    @staticmethod
    def _error(code: str, message: str) -> JSONResponse:
        return JSONResponse({"Response": {"Error": {"Code": code, "Message": message},
                                          "RequestId": str(uuid.uuid4())}})

    def _signature_error(self, request: Request, body: bytes) -> tuple[str, str] | None:
        """Check TC3-HMAC-SHA256 as Tencent Cloud does; the error (code, message) when it is wrong."""
        auth = request.headers.get("authorization", "")
        try:
            algorithm, rest = auth.split(" ", 1)
            parts = dict(p.strip().split("=", 1) for p in rest.split(","))
            secret_id, date, service, _ = parts["Credential"].split("/")
        except (ValueError, KeyError):
            return "AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256"
        if algorithm != "TC3-HMAC-SHA256" or parts.get("SignedHeaders") != "content-type;host":
            return "AuthFailure.InvalidAuthorization", "unsupported algorithm or signed headers"
        if secret_id != self.secret_id:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found"
        stamp = request.headers.get("x-tc-timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - time.time()) > SKEW_SECONDS:
            return "AuthFailure.SignatureExpire", "Signature expired"
        if datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d") != date:
            return "AuthFailure.SignatureFailure", "The date of the credential is not the timestamp's"
        canonical = "\n".join([request.method, request.url.path, request.url.query,
                               f"content-type:{request.headers.get('content-type', '')}\n"
                               f"host:{request.headers.get('host', '')}\n",
                               "content-type;host", hashlib.sha256(body).hexdigest()])
        to_sign = "\n".join(["TC3-HMAC-SHA256", stamp, f"{date}/{service}/tc3_request",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        if Sign.sign_tc3(self.secret_key, date, service, to_sign) != parts.get("Signature"):
            return "AuthFailure.SignatureFailure", "The provided credentials could not be validated"
        return None

    async def _api(self, request: Request) -> JSONResponse:
        body = await request.body()
        wrong = self._signature_error(request, body)
        if wrong is not None:
            self.refused.append(wrong[0])
            return self._error(*wrong)
        if request.headers.get("x-tc-action") != "SendSms" or request.headers.get("x-tc-version") != "2021-01-11":
            return self._error("InvalidAction", "only SendSms of 2021-01-11 here")
        params = json.loads(body)
        self.requests.append(params)
        if params.get("SmsSdkAppId") != self.app_id:
            return self._refuse("FailedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail")
        if params.get("SignName") != self.sign_name:
            return self._refuse("FailedOperation.SignatureIncorrectOrUnapproved", "signature unapproved")
        approved = self.approved.get(str(params.get("TemplateId")))
        if approved is None:
            return self._refuse("FailedOperation.TemplateIncorrectOrUnapproved", "template unapproved")
        template, limit = approved
        values = [str(v) for v in params.get("TemplateParamSet") or []]
        if len(values) != sum(f"{{{i}}}" in template for i in range(1, 20)):
            return self._refuse("InvalidParameterValue.TemplateParameterFormatError", "variables do not match")
        if any(len(v) > limit for v in values):
            return self._refuse("InvalidParameterValue.TemplateParameterLengthLimit", "a variable is too long")
        statuses = [await self._one(n, str(params["TemplateId"]), template, values, params.get("SessionContext", ""))
                    for n in params.get("PhoneNumberSet") or []]
        return JSONResponse({"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}})

    def _refuse(self, code: str, message: str) -> JSONResponse:
        self.refused.append(code)
        return self._error(code, message)

    async def _one(self, number: str, template_id: str, template: str, values: list[str], session: str) -> dict:
        status = {"SerialNo": "", "PhoneNumber": number, "Fee": 0, "SessionContext": session, "IsoCode": "CN"}
        code = self.faults[number].pop(0) if self.faults.get(number) else None
        if code is None and number in self.unsubscribed:
            code = "FailedOperation.PhoneNumberInBlacklist"
        if code is None and (not number.startswith("+") or not number[1:].isdigit() or len(number) < 8):
            code = "InvalidParameterValue.IncorrectPhoneNumber"
        if code is not None:
            return {**status, "Code": code, "Message": code}
        words = template
        for i, v in enumerate(values, start=1):
            words = words.replace(f"{{{i}}}", v)
        serial = f"2433:{next(self._serials):030d}"
        notice = template_id in self.notice_ids
        part = PART_MARK.sub("", values[0]) if notice else words
        joined = self._notices.get((session, number)) if notice and session else None
        if joined is not None:  # the next part of a notice: the person reads one message
            joined.body += part
            joined.template_ids.append(template_id)
            joined.texts.append(f"【{self.sign_name}】{words}")
        else:
            msg = Sms(serial, number, part, [template_id], self.now(), session, [f"【{self.sign_name}】{words}"])
            self.sent.append(msg)
            self.by_sid[serial] = msg
            if notice and session:
                self._notices[(session, number)] = msg  # its next parts join it
        await self._arrived()
        return {**status, "SerialNo": serial, "Fee": 1, "Code": "Ok", "Message": "send success"}
