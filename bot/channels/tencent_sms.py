"""The SMS channel on Tencent Cloud SMS (mainland China): approved templates out, reply and receipt callbacks in.

Outbound, each message is its approved template with its values, or the
generic notice in as many parts as it needs (content/sms_templates.py), sent
with the county's signature by the official SDK's `SendSms`, one number per
request; the per-number result (`SendStatusSet`: `Ok` or an error code) is
the message's. Tencent Cloud's codes become the outbox's: frequency limits are
retried later (spaced by the drain's backoff, never as a burst), an invalid
number or an unsubscribed one is permanent (and marks the person unreachable
by SMS, handlers/failures.py), an unapproved template or signature is
permanent and tells the administrators.

Inbound, Tencent Cloud posts replies and delivery receipts as JSON to
`/tencent/sms/SECRET/reply` and `/tencent/sms/SECRET/status`. They are not
signed: the path's secret (CHECKIN_TENCENT_CALLBACK_SECRET) and, when set, the
allowed networks (CHECKIN_TENCENT_CALLBACK_NETWORKS) are what keep anyone else
out; a request failing either changes nothing (404 or 403).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.channels.sms import SmsChannel
from content.sms_templates import Part, Templates
from handlers.contract import Inbound
from scheduler.channels import PermanentSendError, SendResult, TransientSendError
from storage.outbox import Outgoing

log = logging.getLogger(__name__)

REPLY_PATH = "/tencent/sms/{secret}/reply"
STATUS_PATH = "/tencent/sms/{secret}/status"
OK = {"result": 0, "errmsg": "OK"}  # what Tencent Cloud expects back from a callback
# Tencent Cloud's per-number codes (SendStatusSet[].Code) and request errors, as the outbox's outcomes.
LATER = {  # frequency limits: try again after this many seconds
    "LimitExceeded.PhoneNumberThirtySecondLimit": 60, "LimitExceeded.PhoneNumberOneHourLimit": 3600,
    "LimitExceeded.PhoneNumberDailyLimit": 3600, "LimitExceeded.DailyLimit": 3600,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": 3600, "RequestLimitExceeded": 60,
    "InternalError": 60, "InternalError.Timeout": 60, "ClientNetworkError": 60, "ServerNetworkError": 60,
}


class TencentSmsChannel:
    """Plain SMS through Tencent Cloud: the same `sms` channel as Twilio's, behind the same handlers."""

    name = "sms"

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        *,
        app_id: str,
        sign_name: str,
        templates: Templates,
        on_inbound: Callable[[Inbound], Awaitable[None]],
        on_status: Callable[[str, str, str | None], Awaitable[None]],
        now: Callable[[], datetime],
        callback_secret: str | None,
        networks: str | None = None,
        region: str = "ap-guangzhou",
        endpoint: str = "https://sms.tencentcloudapi.com",
        default_language: str = "zh-CN",
        rate: float = 1.0,
    ) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111 import sms_client

        self.rate, self.concurrency = rate, 4
        self.app_id, self.sign_name, self.templates = app_id, sign_name, templates
        self.on_inbound, self.on_status, self.now = on_inbound, on_status, now
        self.callback_secret, self.default_language = callback_secret, default_language
        self.networks = [ipaddress.ip_network(n.strip(), strict=False) for n in (networks or "").split(",")
                         if n.strip()]
        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        http = HttpProfile(protocol=url.scheme, endpoint=url.netloc, reqTimeout=15)
        self.client = sms_client.SmsClient(credential.Credential(secret_id, secret_key), region,
                                           ClientProfile(httpProfile=http))
        logging.getLogger("tencentcloud_sdk_common").setLevel(logging.WARNING)  # it can log request bodies

    async def start(self, receive: bool = True) -> None:
        """Nothing to open: Tencent Cloud calls our callbacks."""

    async def stop(self) -> None:
        """Nothing to close."""

    # ---- out -------------------------------------------------------------------------

    def parts(self, message: Outgoing) -> list[Part]:
        """The templates this message goes as (its own, or notices), in the person's language when it is known."""
        said = message.payload.get("said")
        language = (said or {}).get("lang") or self.default_language
        return self.templates.parts(language, said, SmsChannel.render(message))

    async def send(self, message: Outgoing) -> SendResult:
        """Send each part (one request each, in order); the first part's serial number is the message's id."""
        first: str | None = None
        for i, part in enumerate(self.parts(message)):
            try:
                serial = await asyncio.to_thread(self._send_one, message.address, part, message.id)
            except (TransientSendError, PermanentSendError):
                if i == 0:
                    raise
                log.warning("message %s: part %s of its notice not sent; the first went", message.id, i + 1)
                break
            first = first or serial
        return SendResult(provider_id=first)

    def _send_one(self, number: str, part: Part, message_id: int) -> str:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.sms.v20210111 import models

        req = models.SendSmsRequest()
        req.PhoneNumberSet, req.SmsSdkAppId, req.SignName = [number], self.app_id, self.sign_name
        req.TemplateId, req.TemplateParamSet = part.template.id, list(part.values)
        req.SessionContext = str(message_id)
        try:
            resp = self.client.SendSms(req)
        except TencentCloudSDKException as exc:  # the whole request: credentials, limits, the network
            raise _error(exc.get_code() or "InternalError", exc.get_message() or "") from None
        (status,) = resp.SendStatusSet or [None]
        if status is None:
            raise TransientSendError("no SendStatusSet in the answer", code="InternalError")
        if status.Code != "Ok":
            raise _error(status.Code, status.Message or "")
        return status.SerialNo

    # ---- in: callbacks -------------------------------------------------------------------

    def _allowed(self, request: Request) -> Response | None:
        """None when the request may act; else the refusal (404 a wrong secret, 403 a network not allowed)."""
        given = request.path_params.get("secret", "")
        if not self.callback_secret or not hmac.compare_digest(given.encode(), self.callback_secret.encode()):
            log.warning("tencent callback %s: wrong secret in the path", request.url.path.rsplit("/", 1)[-1])
            return Response(status_code=404)
        if self.networks:
            host = request.client.host if request.client else ""
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                address = None
            if address is None or not any(address in net for net in self.networks):
                log.warning("tencent callback from a network not allowed")
                return Response(status_code=403)
        return None

    @staticmethod
    async def _json(request: Request):
        try:
            return json.loads(await request.body())
        except ValueError:
            return None

    async def reply(self, request: Request) -> Response:
        """POST REPLY_PATH: a person's reply ({mobile, nationcode, text, time, sign, extend})."""
        refused = self._allowed(request)
        if refused is not None:
            return refused
        body = await self._json(request)
        if not isinstance(body, dict) or not body.get("mobile"):
            return JSONResponse({"result": 1, "errmsg": "not a reply"}, status_code=400)
        number = f"+{body.get('nationcode') or '86'}{body['mobile']}"
        words = str(body.get("text") or "")
        # Tencent gives a reply no id: the number, its time and its words make one (a repeated post is the same).
        digest = hashlib.sha256(f"{number}|{body.get('time')}|{words}".encode()).hexdigest()[:24]
        await self.on_inbound(Inbound(channel=self.name, address=number, text=words, received_at=self.now(),
                                      provider_id=f"tc:{body.get('time')}:{digest}"))
        return JSONResponse(OK)

    async def status(self, request: Request) -> Response:
        """POST STATUS_PATH: delivery receipts, a list of {sid, report_status SUCCESS|FAIL, errmsg, ...}."""
        refused = self._allowed(request)
        if refused is not None:
            return refused
        body = await self._json(request)
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list):
            return JSONResponse({"result": 1, "errmsg": "not a receipt"}, status_code=400)
        for receipt in body:
            if not isinstance(receipt, dict) or not receipt.get("sid"):
                continue
            ok = receipt.get("report_status") == "SUCCESS"
            await self.on_status(str(receipt["sid"]), "delivered" if ok else "undelivered",
                                 None if ok else str(receipt.get("errmsg") or "FAIL"))
        return JSONResponse(OK)


def _error(code: str, detail: str) -> TransientSendError | PermanentSendError:
    """Tencent Cloud's code as the outbox's failure: later, or never (the number, or the county's set-up)."""
    if code in LATER or code.startswith("LimitExceeded."):
        return TransientSendError(f"{code}: {detail}", code=code, retry_after=LATER.get(code, 3600))
    if code.startswith(("InternalError", "RequestLimitExceeded")):
        return TransientSendError(f"{code}: {detail}", code=code, retry_after=60)
    return PermanentSendError(f"{code}: {detail}", code=code)  # the number, or the template, signature, account
