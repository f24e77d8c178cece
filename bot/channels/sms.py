"""The SMS channel on the twilio Client: outbound by REST, signed inbound and status webhooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from handlers.contract import Inbound
from scheduler.channels import PermanentSendError, SendResult, TransientSendError
from storage.outbox import Outgoing

log = logging.getLogger(__name__)

INBOUND_PATH = "/twilio/sms"
STATUS_PATH = "/twilio/status"
TWILIO_API = "https://api.twilio.com"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Carrier and Twilio errors that retrying will not mend.
PERMANENT = {21211, 21214, 21408, 21602, 21604, 21606, 21610, 21612, 21614, 30003, 30004, 30005, 30006, 30007}


@contextmanager
def twilio_errors() -> Iterator[None]:
    """Twilio's errors as the outbox's: retried later (429, 5xx, the network) or permanent (the number)."""
    try:
        yield
    except TwilioRestException as exc:
        code = str(exc.code or exc.status)
        if exc.status == 429 or exc.status >= 500:
            raise TransientSendError(f"HTTP {exc.status}", code=code) from None
        if (exc.code or 0) in PERMANENT or 400 <= exc.status < 500:
            raise PermanentSendError(f"HTTP {exc.status} code {exc.code}", code=code) from None
        raise TransientSendError(f"HTTP {exc.status}", code=code) from None
    except OSError as exc:  # connection refused, DNS, time-outs (requests' errors are OSErrors)
        raise TransientSendError(f"{type(exc).__name__}", code="network") from None


class RedirectingHttpClient(TwilioHttpClient):
    """Sends the twilio Client's requests to TWILIO_API_BASE_URL instead of api.twilio.com."""

    def __init__(self, base_url: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API):]
        return super().request(method, url, *args, **kwargs)


def twilio_client(account_sid: str, auth_token: str, api_base_url: str = TWILIO_API) -> Client:
    """The twilio Client, sent to `api_base_url` when it is not Twilio's own (the stand-in), with twilio's request
    log kept quiet (it logs each request's body, phone numbers and message text, at INFO)."""
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    http = RedirectingHttpClient(api_base_url, timeout=15) if api_base_url.rstrip("/") != TWILIO_API else None
    return Client(account_sid, auth_token, http_client=http, environment={})


async def signed_form(request: Request, validator: RequestValidator, public_url: str | None) -> dict | None:
    """A Twilio webhook's form when its X-Twilio-Signature is right for the URL Twilio called; else None."""
    form = {k: v for k, v in (await request.form()).items()}
    base = public_url or str(request.base_url).rstrip("/")
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not validator.validate(url, form, signature):
        log.warning("twilio webhook %s: missing or wrong signature", request.url.path)
        return None
    return form


class SmsChannel:
    """Plain SMS through Twilio: buttons become a line saying what to reply."""

    name = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        on_inbound: Callable[[Inbound], Awaitable[None]],
        on_status: Callable[[str, str, str | None], Awaitable[None]],
        now: Callable[[], datetime],
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str = TWILIO_API,
        public_url: str | None = None,
        rate: float = 1.0,
    ) -> None:
        self.rate = rate
        self.concurrency = 4  # sends in flight (the client is synchronous: each runs in a worker thread)
        self.on_inbound, self.on_status = on_inbound, on_status
        self.now = now  # the service's injected clock: it stamps what arrives
        self.from_number, self.messaging_service_sid = from_number, messaging_service_sid
        self.public_url = public_url.rstrip("/") if public_url else None
        self.validator = RequestValidator(auth_token)
        self.client = twilio_client(account_sid, auth_token, api_base_url)

    async def start(self, receive: bool = True) -> None:
        """Nothing to open: Twilio calls our webhooks."""

    async def stop(self) -> None:
        """Nothing to close."""

    # ---- out -------------------------------------------------------------------------

    @staticmethod
    def render(message: Outgoing) -> str:
        """The SMS text: the body, then the reply hint that stands in for buttons."""
        hint = message.payload.get("sms_hint")
        return f"{message.body}\n{hint}" if hint else message.body

    async def send(self, message: Outgoing) -> SendResult:
        """Create the message by REST (blocking client, so in a thread); map Twilio errors."""
        kwargs = {"to": message.address, "body": self.render(message)}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_number
        if self.public_url:
            kwargs["status_callback"] = f"{self.public_url}{STATUS_PATH}"
        with twilio_errors():
            created = await asyncio.to_thread(self.client.messages.create, **kwargs)
        return SendResult(provider_id=created.sid)

    # ---- in: signed webhooks ---------------------------------------------------------

    async def _verified_form(self, request: Request) -> dict | None:
        return await signed_form(request, self.validator, self.public_url)

    async def inbound(self, request: Request) -> Response:
        """POST /twilio/sms: one message from a phone; the reply goes out by REST through the outbox."""
        form = await self._verified_form(request)
        if form is None:
            return Response(status_code=403)
        sender = form.get("From", "")
        await self.on_inbound(Inbound(
            channel=self.name, address=sender, text=form.get("Body", ""), received_at=self.now(),
            provider_id=form.get("MessageSid") or None,
        ))
        return Response(EMPTY_TWIML, media_type="text/xml")

    async def status(self, request: Request) -> Response:
        """POST /twilio/status: a delivery status for one of our messages."""
        form = await self._verified_form(request)
        if form is None:
            return Response(status_code=403)
        sid = form.get("MessageSid", "")
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        await self.on_status(sid, status, form.get("ErrorCode") or None)
        return Response(status_code=204)
