"""A Twilio REST API stand-in on loopback, for the tests and `checkin demo`.

It takes `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` as Twilio does
(Basic auth, form fields, `To` required, `From` or `MessagingServiceSid`),
answers with Twilio-shaped JSON, records what was sent, fails on demand with
Twilio's error bodies (400 with `code` 21610, 21211, 21614; 429; 5xx), and acts
as the phone network: it posts inbound messages and delivery status callbacks
to the service, signed exactly as Twilio signs them (twilio's RequestValidator).
The Calls API and the telephone at the other end are in `twilio_calls.py`.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from bot.sandbox.loopback import LoopbackServer
from bot.sandbox.phones import SentMessages
from bot.sandbox.twilio_calls import Calls

ERRORS = {
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    20429: "Too Many Requests",
}


@dataclass
class Sms:
    """One message the service sent."""

    sid: str
    to: str
    from_: str | None
    body: str
    status_callback: str | None
    date: datetime
    statuses: list[str] = field(default_factory=list)


class FakeTwilio(SentMessages, LoopbackServer):
    """The Twilio API and the phone network, on loopback."""

    UNDELIVERED = 30003  # a carrier's code in a receipt for a message not delivered

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "test-auth-token",
                 number: str = "+15005550006", now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.account_sid, self.auth_token, self.number, self.now = account_sid, auth_token, number, now
        self.by_sid: dict[str, Sms] = {}
        self.faults: dict[str, list[tuple[int, int | None]]] = defaultdict(list)  # to -> [(status, code)]
        self.requests: list[dict] = []
        self.service_url: str | None = None  # the public URL the service signs against
        self._ids = itertools.count(1)
        self.calls = Calls(self)  # the Calls API and the telephones it rings (bot/sandbox/twilio_calls.py)
        SentMessages.__init__(self)
        LoopbackServer.__init__(self, Starlette(routes=[
            Route("/2010-04-01/Accounts/{sid}.json", self._account, methods=["GET"]),
            Route("/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", self._numbers, methods=["GET"]),
            Route("/2010-04-01/Accounts/{sid}/Messages.json", self._create, methods=["POST"]),
            Route("/2010-04-01/Accounts/{sid}/Calls.json", self.calls.create, methods=["POST"]),
            Route("/2010-04-01/Accounts/{sid}/Recordings/{rec}.mp3", self.calls.recording, methods=["GET"]),
            Route("/2010-04-01/Accounts/{sid}/Recordings/{rec}.json", self.calls.delete_recording,
                  methods=["DELETE"]),
        ]))

    @property
    def base_url(self) -> str:
        """What goes into TWILIO_API_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    # ---- on demand -----------------------------------------------------------------

    def fail_next(self, to: str, status: int, code: int | None = None, times: int = 1) -> None:
        """The next `times` sends to `to` fail with HTTP `status` and Twilio error `code`."""
        self.faults[to].extend([(status, code)] * times)

    # ---- the phone network's side --------------------------------------------------

    def sign(self, url: str, params: dict) -> str:
        """X-Twilio-Signature for a POST of `params` to `url`, as Twilio computes it."""
        return RequestValidator(self.auth_token).compute_signature(url, params)

    async def post_signed(self, path: str, params: dict, *, signature: str | None = None,
                          tamper: dict | None = None) -> httpx.Response:
        """POST form `params` to the service's `path`, signed (or with `signature`, or altered after signing)."""
        url = f"{self.service_url}{path}"
        sig = signature if signature is not None else self.sign(url, params)
        body = {**params, **(tamper or {})}
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(url, data=body, headers={"X-Twilio-Signature": sig} if sig else {})

    def inbound_params(self, from_: str, body: str, sid: str | None = None) -> dict:
        return {
            "MessageSid": sid or "SM" + secrets.token_hex(16), "SmsSid": "", "AccountSid": self.account_sid,
            "MessagingServiceSid": "", "From": from_, "To": self.number, "Body": body, "NumMedia": "0",
            "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01",
            "FromCountry": "CN", "ToCountry": "US",
        }

    async def send_sms(self, from_: str, body: str, sid: str | None = None) -> httpx.Response:
        """A person texts the service's number."""
        params = self.inbound_params(from_, body, sid)
        params["SmsSid"] = params["MessageSid"]
        return await self.post_signed("/twilio/sms", params)

    async def report_status(self, sid: str, status: str, error_code: int | None = None) -> httpx.Response:
        """The carrier reports a delivery status for message `sid` to its StatusCallback."""
        msg = self.by_sid[sid]
        msg.statuses.append(status)
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid, "MessageStatus": status,
                  "SmsStatus": status, "To": msg.to, "From": msg.from_ or self.number, "ApiVersion": "2010-04-01"}
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        path = msg.status_callback.removeprefix(self.service_url or "") if msg.status_callback else "/twilio/status"
        return await self.post_signed(path, params)

    # ---- the REST API --------------------------------------------------------------

    def _error(self, status: int, code: int | None, message: str | None = None) -> JSONResponse:
        body = {"code": code, "message": message or ERRORS.get(code or 0, "Error"),
                "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
        return JSONResponse(body, status_code=status)

    def _authorised(self, request: Request, sid: str) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == sid == self.account_sid and password == self.auth_token

    async def _account(self, request: Request) -> JSONResponse:
        """The account, as `checkin doctor` fetches it."""
        sid = request.path_params["sid"]
        if not self._authorised(request, sid):
            return self._error(401, 20003, "Authenticate")
        return JSONResponse({"sid": sid, "friendly_name": "county", "status": "active", "type": "Full",
                             "uri": f"/2010-04-01/Accounts/{sid}.json"})

    async def _numbers(self, request: Request) -> JSONResponse:
        """The account's numbers, filtered by PhoneNumber as Twilio filters them."""
        sid = request.path_params["sid"]
        if not self._authorised(request, sid):
            return self._error(401, 20003, "Authenticate")
        wanted = request.query_params.get("PhoneNumber")
        owned = [n for n in (self.number,) if wanted in (None, n)]
        return JSONResponse({"incoming_phone_numbers": [
            {"sid": "PN" + "0" * 32, "account_sid": sid, "phone_number": n,
             "capabilities": {"sms": True, "voice": True}} for n in owned],
            "page": 0, "page_size": 50, "start": 0, "end": len(owned) - 1, "next_page_uri": None,
            "previous_page_uri": None, "first_page_uri": request.url.path, "uri": request.url.path})

    async def _create(self, request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        if not self._authorised(request, sid):
            return self._error(401, 20003, "Authenticate")
        form = dict(await request.form())
        self.requests.append(form)
        to = form.get("To")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        if self.faults.get(to):
            status, code = self.faults[to].pop(0)
            return self._error(status, code)
        if to in self.unsubscribed:
            return self._error(400, 21610)
        if not to.startswith("+") or not to[1:].isdigit():
            return self._error(400, 21211)
        msg = Sms("SM" + secrets.token_hex(16), to, form.get("From"), form["Body"], form.get("StatusCallback"),
                  self.now())
        msg.statuses.append("queued")
        self.sent.append(msg)
        self.by_sid[msg.sid] = msg
        await self._arrived()
        stamp = format_datetime(msg.date, usegmt=True)
        return JSONResponse(status_code=201, content={
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": msg.body,
            "date_created": stamp, "date_sent": None, "date_updated": stamp, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": msg.from_,
            "messaging_service_sid": form.get("MessagingServiceSid"), "num_media": "0",
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": msg.sid, "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{sid}/Messages/{msg.sid}/Media.json"},
            "to": to, "uri": f"/2010-04-01/Accounts/{sid}/Messages/{msg.sid}.json",
        })
