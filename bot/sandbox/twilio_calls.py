"""The Twilio stand-in's Calls API and a simulated telephone at the other end.

`POST /2010-04-01/Accounts/{AccountSid}/Calls.json` is taken as Twilio takes it
(Basic auth, form fields, `To` and `From` required, `Url` or `Twiml`) and
answered with a Call resource. Then a test rings the phone: `ring(sid, ...)`
plays the call as a telephone would. It is answered by a person (or by
voicemail, or not at all, or busy, or failed), fetches the TwiML from the
service with a signed POST as Twilio does, checks it (a `<Gather>` must take
the keypad, name an action and a number of digits; `<Record>` an action; no
verb Twilio does not know), presses the keys the test gives, records what
was said, posts the recording and, at the end, the signed status callback.
`call_in(from_, ...)` is a person calling the service's number.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from bot.sandbox.twilio_api import FakeTwilio

VERBS = {"Say", "Play", "Pause", "Gather", "Record", "Redirect", "Hangup", "Reject"}
OUTCOMES = ("answer", "voicemail", "no-answer", "busy", "failed")


class TwimlError(AssertionError):
    """The service answered with TwiML Twilio would refuse or misread."""


@dataclass
class Call:
    """One call, placed by the service (`outbound-api`) or by a person (`inbound`)."""

    sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    machine_detection: str | None
    direction: str = "outbound-api"
    status: str = "queued"
    heard: list[str] = field(default_factory=list)  # what the phone heard, in order
    languages: list[str] = field(default_factory=list)  # the language of each <Say>
    pressed: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # recording sids posted to the service
    requests: list[tuple[str, dict]] = field(default_factory=list)  # (url, params) posted to the service
    statuses: list[str] = field(default_factory=list)  # status callbacks posted


class Calls:
    """The Calls resource of the stand-in, and the phones it rings."""

    def __init__(self, fake: FakeTwilio) -> None:
        self.fake = fake
        self.placed: list[Call] = []
        self.by_sid: dict[str, Call] = {}
        self.deleted: list[str] = []  # recordings deleted through the API

    def audio(self, rec: str) -> bytes:
        """What a recording sounds like here: a few bytes that say which one it is."""
        return b"ID3\x04\x00\x00\x00\x00\x00\x00" + rec.encode()

    async def recording(self, request: Request) -> Response:
        """GET .../Recordings/{sid}.mp3, with the account's credentials, as Twilio serves a recording's audio."""
        fake, rec = self.fake, request.path_params["rec"]
        if not fake._authorised(request, request.path_params["sid"]):
            return fake._error(401, 20003, "Authenticate")
        fake.requests.append({"recording": rec})
        if rec not in {r for c in self.by_sid.values() for r in c.recorded}:
            return fake._error(404, 20404, "The requested resource was not found")
        return Response(self.audio(rec), media_type="audio/mpeg")

    async def delete_recording(self, request: Request) -> Response:
        """DELETE .../Recordings/{sid}.json: gone for good (204), as Twilio deletes one."""
        fake, rec = self.fake, request.path_params["rec"]
        if not fake._authorised(request, request.path_params["sid"]):
            return fake._error(401, 20003, "Authenticate")
        for call in self.by_sid.values():
            if rec in call.recorded:
                call.recorded.remove(rec)
                self.deleted.append(rec)
                return Response(status_code=204)
        return fake._error(404, 20404, "The requested resource was not found")

    def to(self, phone: str) -> list[Call]:
        """The calls the service placed to `phone`, oldest first."""
        return [c for c in self.placed if c.to == phone]

    async def create(self, request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        fake = self.fake
        if not fake._authorised(request, sid):
            return fake._error(401, 20003, "Authenticate")
        form = dict(await request.form())
        fake.requests.append(form)
        to, from_ = form.get("To"), form.get("From")
        if not to:
            return fake._error(400, 21201, "No 'To' number is specified")
        if not from_:
            return fake._error(400, 21213, "No 'From' number is specified")
        if not form.get("Url") and not form.get("Twiml") and not form.get("ApplicationSid"):
            return fake._error(400, 21205, "Url parameter is required.")
        if fake.faults.get(to):
            status, code = fake.faults[to].pop(0)
            return fake._error(status, code)
        if not to.startswith("+") or not to[1:].isdigit():
            return fake._error(400, 13224, "Invalid phone number")
        call = Call("CA" + secrets.token_hex(16), to, from_, form.get("Url", ""), form.get("StatusCallback"),
                    form.get("MachineDetection"))
        self.placed.append(call)
        self.by_sid[call.sid] = call
        await fake._arrived()
        stamp = format_datetime(fake.now(), usegmt=True)
        return JSONResponse(status_code=201, content={
            "account_sid": fake.account_sid, "annotation": None, "answered_by": None, "api_version": "2010-04-01",
            "caller_name": None, "date_created": stamp, "date_updated": stamp, "direction": "outbound-api",
            "duration": None, "end_time": None, "forwarded_from": None, "from": from_, "from_formatted": from_,
            "group_sid": None, "parent_call_sid": None, "phone_number_sid": None, "price": None,
            "price_unit": "USD", "queue_time": "0", "sid": call.sid, "start_time": None, "status": "queued",
            "subresource_uris": {"recordings": f"/2010-04-01/Accounts/{sid}/Calls/{call.sid}/Recordings.json"},
            "to": to, "to_formatted": to, "trunk_sid": None, "uri": f"/2010-04-01/Accounts/{sid}/Calls/{call.sid}.json",
        })

    # ---- the telephone -------------------------------------------------------------

    async def ring(self, sid: str, outcome: str = "answer", keys: list[str] | tuple[str, ...] = (),
                   record_seconds: int = 40) -> Call:
        """The phone the service called rings: picked up by a person, a voicemail, nobody; busy; failed."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        call = self.by_sid[sid]
        if outcome in ("no-answer", "busy", "failed"):
            await self._status(call, outcome, duration=0)
            return call
        answered_by = "machine_start" if outcome == "voicemail" else "human"
        await self._converse(call, keys=() if outcome == "voicemail" else keys, record_seconds=record_seconds,
                             answered_by=answered_by if call.machine_detection else None)
        return call

    async def call_in(self, from_: str, keys: list[str] | tuple[str, ...] = (), record_seconds: int = 40) -> Call:
        """A person calls the service's number."""
        service = self.fake.service_url
        call = Call("CA" + secrets.token_hex(16), self.fake.number, from_, f"{service}/twilio/voice/incoming",
                    f"{service}/twilio/voice/status", None, direction="inbound")
        self.by_sid[call.sid] = call
        await self._converse(call, keys=keys, record_seconds=record_seconds, answered_by=None)
        return call

    def _params(self, call: Call, status: str = "in-progress") -> dict:
        return {"CallSid": call.sid, "AccountSid": self.fake.account_sid, "From": call.from_, "To": call.to,
                "CallStatus": status, "Direction": call.direction, "ApiVersion": "2010-04-01"}

    async def _post(self, call: Call, url: str, params: dict) -> httpx.Response:
        call.requests.append((url, params))
        async with httpx.AsyncClient(timeout=15) as client:  # Twilio gives a webhook 15 seconds
            resp = await client.post(url, data=params, headers={"X-Twilio-Signature": self.fake.sign(url, params)})
        if resp.status_code != 200:
            raise TwimlError(f"{url} answered {resp.status_code}")
        if not resp.headers.get("content-type", "").startswith(("text/xml", "application/xml")):
            raise TwimlError(f"{url} answered {resp.headers.get('content-type')!r}, not TwiML")
        return resp

    async def _converse(self, call: Call, keys, record_seconds: int, answered_by: str | None) -> None:
        keys = list(keys)
        call.status = "in-progress"
        params = self._params(call)
        if answered_by:
            params["AnsweredBy"] = answered_by
        url = call.url
        doc = self._parse((await self._post(call, url, params)).text)
        for _ in range(50):  # a call that loops this long is a fault in the service's TwiML
            nxt = None
            for verb in doc:
                if verb.tag in ("Say", "Play"):
                    self._hear(call, verb)
                elif verb.tag == "Gather":
                    nxt = self._gather(call, verb, keys)
                    if nxt is not None:
                        break
                elif verb.tag == "Record":
                    action = verb.get("action")
                    if not action or int(verb.get("maxLength", "3600")) > 600:
                        raise TwimlError("<Record> needs an action and a maxLength of at most 10 minutes")
                    rec = "RE" + secrets.token_hex(16)
                    call.recorded.append(rec)
                    base = f"{self.fake.base_url}/2010-04-01/Accounts/{self.fake.account_sid}/Recordings/{rec}"
                    nxt = (action, {"RecordingUrl": base, "RecordingSid": rec,
                                    "RecordingDuration": str(min(record_seconds, int(verb.get("maxLength", "3600")))),
                                    "Digits": "hangup"})
                    break
                elif verb.tag == "Redirect":
                    nxt = ((verb.text or "").strip(), {})
                    break
                elif verb.tag in ("Hangup", "Reject"):
                    break
            if nxt is None:  # the end of the document, or a hang-up: the call is over
                break
            url = urljoin(url, nxt[0])
            doc = self._parse((await self._post(call, url, {**self._params(call), **nxt[1]})).text)
        else:
            raise TwimlError("the call never ended")
        await self._status(call, "completed", duration=20)

    def _gather(self, call: Call, verb: ET.Element, keys: list[str]) -> tuple[str, dict] | None:
        if "dtmf" not in (verb.get("input") or "dtmf") or not verb.get("action") or not verb.get("numDigits"):
            raise TwimlError("<Gather> needs input dtmf, an action URL and numDigits")
        for child in verb:
            if child.tag not in ("Say", "Play", "Pause"):
                raise TwimlError(f"<{child.tag}> cannot be inside <Gather>")
            if child.tag != "Pause":
                self._hear(call, child)
        if not keys:
            return None  # nothing pressed: Twilio goes on to the verb after the <Gather>
        key = keys.pop(0)
        call.pressed.append(key)
        return verb.get("action"), {"Digits": key}

    @staticmethod
    def _hear(call: Call, verb: ET.Element) -> None:
        call.heard.append((verb.text or "").strip())
        call.languages.append(verb.get("language", "en-US"))

    @staticmethod
    def _parse(text: str) -> ET.Element:
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise TwimlError(f"not XML: {exc}") from None
        if root.tag != "Response":
            raise TwimlError(f"the root is <{root.tag}>, not <Response>")
        for verb in root:
            if verb.tag not in VERBS:
                raise TwimlError(f"<{verb.tag}> is not a TwiML verb")
        return root

    async def _status(self, call: Call, status: str, duration: int) -> None:
        call.status = status
        call.statuses.append(status)
        if call.status_callback:
            params = {**self._params(call, status), "CallDuration": str(duration)}
            async with httpx.AsyncClient(timeout=15) as client:
                await client.post(call.status_callback, data=params,
                                  headers={"X-Twilio-Signature": self.fake.sign(call.status_callback, params)})
