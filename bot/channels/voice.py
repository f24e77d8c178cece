"""The voice channel on the twilio Client: calls placed by the Calls API, answered on the keypad.

A message to a person on voice is a call. When it is answered, Twilio fetches
`/twilio/voice/answer?m=<message id>` and the service answers with TwiML
(built with `twilio.twiml.voice_response`, never by hand): the message said in
the person's language and, for a check-in prompt or reminder, the menu in a
`<Gather>` (1 all is well, 2 ask the officer to call, 9 hear it again; no key:
the question once more, then goodbye). A key is an inbound message like an SMS
"1" or "2", through the same inbox and handlers; the handler's reply is said in
the same call. A person who calls the number is found by their number and hears
the same menu; an unknown caller hears one neutral sentence. Every webhook is
checked with twilio's RequestValidator (403 and no effect otherwise).

The adapter holds no database session: what it needs to know (the message to
say, who is calling) comes from the stack's callbacks, which run their queries
in worker threads, and `on_key` stores the key, waits for its handling and
gives back the words of the reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from bot.channels.sms import TWILIO_API, signed_form, twilio_client, twilio_errors
from content.catalog import text
from handlers.contract import Inbound, Recording
from scheduler.channels import SendResult
from storage.outbox import Outgoing

log = logging.getLogger(__name__)

ANSWER_PATH = "/twilio/voice/answer"
GATHER_PATH = "/twilio/voice/gather"
INCOMING_PATH = "/twilio/voice/incoming"
STATUS_PATH = "/twilio/voice/status"
RECORDED_PATH = "/twilio/voice/recorded"
# Twilio's text-to-speech voices for our languages (Amazon Polly through Twilio).
VOICES = {"zh-CN": ("cmn-CN", "Polly.Zhiyu"), "en": ("en-US", "Polly.Joanna")}
MENU_KINDS = {"checkin_prompt", "checkin_reminder"}  # messages that ask for an answer on the keypad
KEYS = {"1", "2"}  # the answers, as an SMS would send them: 1 all is well, 2 ask the officer
RECORD = "3"  # a spoken report
AGAIN = "9"
RECORD_SECONDS = 120


@dataclass(frozen=True)
class Script:
    """What one call says: in whose language, which message, and whether it asks for a key."""

    language: str
    text: str
    menu: bool
    address: str  # the person's number: the keys they press come from it


class VoiceChannel:
    """Phone calls through Twilio; keys pressed become inbound messages."""

    name = "voice"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str,
        public_url: str,
        on_key: Callable[[Inbound], Awaitable[list[str]]],
        on_status: Callable[[str, str, str | None], Awaitable[None]],
        script: Callable[[int], Awaitable[Script | None]],
        caller: Callable[[str], Awaitable[str | None]],
        now: Callable[[], datetime],
        api_base_url: str = TWILIO_API,
        rate: float = 1.0,
    ) -> None:
        self.rate = rate  # calls placed per second (CHECKIN_VOICE_RATE)
        self.concurrency = 2
        self.from_number, self.public_url = from_number, public_url.rstrip("/")
        self.on_key, self.on_status, self.now = on_key, on_status, now  # on_key: stored, handled, its reply's words
        self.script, self.caller = script, caller
        self.validator = RequestValidator(auth_token)
        self.client = twilio_client(account_sid, auth_token, api_base_url)

    async def start(self, receive: bool = True) -> None:
        """Nothing to open: Twilio calls our webhooks."""

    async def stop(self) -> None:
        """Nothing to close."""

    # ---- out: a message is a call ------------------------------------------------------

    async def send(self, message: Outgoing) -> SendResult:
        """Place the call; what it says is fetched by Twilio from ANSWER_PATH when it is answered."""
        kwargs = dict(to=message.address, from_=self.from_number, url=f"{self.public_url}{ANSWER_PATH}?m={message.id}",
                      status_callback=f"{self.public_url}{STATUS_PATH}", status_callback_event=["completed"],
                      machine_detection="Enable")
        with twilio_errors():
            created = await asyncio.to_thread(self.client.calls.create, **kwargs)
        return SendResult(provider_id=created.sid)

    # ---- TwiML ---------------------------------------------------------------------------

    @staticmethod
    def _say(node, language: str, words: str) -> None:
        lang, voice = VOICES.get(language, VOICES["en"])
        node.say(words, language=lang, voice=voice)

    def _menu(self, language: str, opening: list[str], message_id: int | None) -> VoiceResponse:
        """The words, then the menu in a <Gather>; no key: once more, then goodbye."""
        action = f"{self.public_url}{GATHER_PATH}" + (f"?m={message_id}" if message_id is not None else "")
        r = VoiceResponse()
        for attempt in range(2):
            g = Gather(input="dtmf", num_digits=1, timeout=8, action=action, action_on_empty_result=False)
            for words in (opening if attempt == 0 else [text(language, "voice.again")]):
                self._say(g, language, words)
            self._say(g, language, text(language, "voice.menu"))
            r.append(g)
        self._say(r, language, text(language, "voice.goodbye"))
        r.hangup()
        return r

    @staticmethod
    def _twiml(r: VoiceResponse) -> Response:
        return Response(str(r), media_type="text/xml")

    def _goodbye(self, language: str, *words: str, r: VoiceResponse | None = None) -> Response:
        """`words`, then goodbye, and the call ends (after what `r` already says)."""
        r = r or VoiceResponse()
        for w in words:
            self._say(r, language, w)
        self._say(r, language, text(language, "voice.goodbye"))
        r.hangup()
        return self._twiml(r)

    # ---- in: signed webhooks -------------------------------------------------------------

    async def _verified_form(self, request: Request) -> dict | None:
        return await signed_form(request, self.validator, self.public_url)

    @staticmethod
    def _message_id(request: Request) -> int | None:
        m = request.query_params.get("m", "")
        return int(m) if m.isdigit() else None

    async def answer(self, request: Request) -> Response:
        """POST ANSWER_PATH?m=ID: the call we placed was answered; what it says."""
        form = await self._verified_form(request)
        if form is None:
            return Response(status_code=403)
        mid = self._message_id(request)
        script = await self.script(mid) if mid is not None else None
        r = VoiceResponse()
        if script is None:  # not a message of ours (or gone since): say nothing about anyone
            r.hangup()
            return self._twiml(r)
        if form.get("AnsweredBy", "human") not in ("human", "unknown"):  # voicemail or a fax: not an answer
            log.info("call %s for message %s reached %s", form.get("CallSid"), mid, form.get("AnsweredBy"))
            await self.on_status(form.get("CallSid", ""), "no-answer", "voicemail")
            r.hangup()
            return self._twiml(r)
        lang = script.language
        if script.menu:
            return self._twiml(self._menu(lang, [text(lang, "voice.greeting"), script.text], mid))
        return self._goodbye(lang, text(lang, "voice.message"), script.text)

    async def incoming(self, request: Request) -> Response:
        """POST INCOMING_PATH: a person calls the number; an unknown caller hears one neutral sentence."""
        form = await self._verified_form(request)
        if form is None:
            return Response(status_code=403)
        language = await self.caller(form.get("From", ""))
        if language is None:
            r = VoiceResponse()
            self._say(r, "zh-CN", text("zh-CN", "voice.unknown"))
            r.hangup()
            return self._twiml(r)
        return self._twiml(self._menu(language, [text(language, "voice.greeting")], None))

    async def _who(self, request: Request, form: dict) -> tuple[str, str, Script | None] | None:
        """The person on the call: (their number, their language, the message the call is about, if any)."""
        mid = self._message_id(request)
        if mid is not None:
            script = await self.script(mid)
            return None if script is None else (script.address, script.language, script)
        address = form.get("From" if form.get("Direction") == "inbound" else "To", "")
        language = await self.caller(address)
        return None if language is None else (address, language, None)

    async def _verified_call(self, request: Request) -> tuple[dict, str, str, Script | None] | Response:
        """The signed form and the person on the call; else the refusal (403 unsigned, 404 nobody of ours)."""
        form = await self._verified_form(request)
        if form is None:
            return Response(status_code=403)
        who = await self._who(request, form)
        return Response(status_code=404) if who is None else (form, *who)

    def _query(self, request: Request) -> str:
        mid = self._message_id(request)
        return f"?m={mid}" if mid is not None else ""

    async def _answered(self, inbound: Inbound, language: str, menu_after: int | None = None) -> Response:
        """Hand the key (or the recording) to the handlers; say their reply, then goodbye (or, after a spoken
        report in a check-in's call, the menu again: the report does not answer the check-in)."""
        said = await self.on_key(inbound) or [text(language, "voice.received")]
        if menu_after is not None:
            return self._twiml(self._menu(language, said, menu_after))
        return self._goodbye(language, *said)

    async def gather(self, request: Request) -> Response:
        """POST GATHER_PATH: a key was pressed; 1 and 2 go to the handlers as an SMS would, their reply is said;
        3 records a spoken report."""
        got = await self._verified_call(request)
        if isinstance(got, Response):
            return got
        form, address, language, script = got
        digit = (form.get("Digits") or "")[:1]
        if digit == RECORD:
            r = VoiceResponse()
            self._say(r, language, text(language, "voice.record"))
            r.record(max_length=RECORD_SECONDS, finish_on_key="#", play_beep=True, timeout=10,
                     action=f"{self.public_url}{RECORDED_PATH}{self._query(request)}")
            return self._goodbye(language, text(language, "voice.not_recorded"), r=r)  # when nothing was recorded
        if digit not in KEYS:  # 9 says the message again; any other key is not a choice
            again = [script.text] if script is not None else []
            opening = again if digit == AGAIN else [text(language, "voice.not_a_choice")]
            return self._twiml(self._menu(language, opening, self._message_id(request)))
        provider_id = f"{form.get('CallSid', '')}:{digit}"  # Twilio's retry of the same key is the same message
        return await self._answered(Inbound(channel=self.name, address=address, text=digit, received_at=self.now(),
                                            provider_id=provider_id), language)

    async def recorded(self, request: Request) -> Response:
        """POST RECORDED_PATH: a spoken report was recorded; it goes to the handlers as the person's report."""
        got = await self._verified_call(request)
        if isinstance(got, Response):
            return got
        form, address, language, script = got
        duration = form.get("RecordingDuration") or "0"
        seconds = int(duration) if duration.isdigit() else 0
        url, sid = form.get("RecordingUrl", ""), form.get("RecordingSid", "")
        if seconds <= 0 or not url.startswith(("https://", "http://")) or not sid:
            return self._goodbye(language, text(language, "voice.not_recorded"))
        inbound = Inbound(channel=self.name, address=address, received_at=self.now(),
                          provider_id=f"{form.get('CallSid', '')}:{RECORD}", recording=Recording(url, seconds, sid))
        return await self._answered(inbound, language,
                                    menu_after=self._message_id(request) if script and script.menu else None)

    async def status(self, request: Request) -> Response:
        """POST STATUS_PATH: how the call ended (completed, no-answer, busy, failed)."""
        form = await self._verified_form(request)
        if form is None:
            return Response(status_code=403)
        await self.on_status(form.get("CallSid", ""), form.get("CallStatus", ""), form.get("ErrorCode") or None)
        return Response(status_code=204)


def fetch_recording(account_sid: str, auth_token: str, api_base_url: str, url: str) -> bytes | None:
    """A recording's audio (MP3) from Twilio with the account's credentials; None when Twilio has none.

    Only from the configured Twilio API (a stored address pointing elsewhere is never fetched). With requests,
    the HTTP library the twilio package itself uses (its own client returns text, not bytes).
    """
    import requests

    base = (api_base_url or TWILIO_API).rstrip("/") + "/"
    if not url.startswith(base) or ".." in url:
        return None
    resp = requests.get(url + ".mp3", auth=(account_sid, auth_token), timeout=30)
    return resp.content if resp.status_code == 200 else None


def delete_recordings(account_sid: str, auth_token: str, api_base_url: str, urls: list[str]) -> list[str]:
    """Delete recordings at Twilio (a purge); the ones that could not be deleted (one already gone counts as
    deleted)."""
    client = twilio_client(account_sid, auth_token, api_base_url)
    left = []
    for url in urls:
        sid = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json").removesuffix(".mp3")
        try:
            client.recordings(sid).delete()
        except TwilioRestException as exc:
            if exc.status != 404:
                left.append(sid)
        except OSError:
            left.append(sid)
    return left
