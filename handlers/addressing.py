"""Where a message to an officer or a supervisee goes: channel and address."""

from __future__ import annotations

from storage.models import ChannelName, Officer, Supervisee


def console_address(who: Officer | Supervisee) -> str:
    """The console channel's address for a person: `officer:ID` or `case:CASE_NUMBER`."""
    if isinstance(who, Officer):
        return f"officer:{who.id}"
    return f"case:{who.case_number}"


def route_for(who: Officer | Supervisee) -> tuple[str, str]:
    """The (channel, address) proactive messages to `who` use.

    A call for a supervisee who prefers voice and has a phone; Telegram when
    bound (and preferred, for supervisees), else SMS when a phone is known,
    else the console mailbox.
    """
    if isinstance(who, Officer):
        if who.telegram_id is not None:
            return ChannelName.telegram, str(who.telegram_id)
        if who.phone:
            return ChannelName.sms, who.phone
        return ChannelName.console, console_address(who)
    if who.preferred_channel == ChannelName.voice and who.phone:  # they hear everything by phone call
        return ChannelName.voice, who.phone
    telegram_ok = who.telegram_chat_id is not None and who.telegram_blocked_at is None
    sms_ok = bool(who.phone) and who.sms_blocked_at is None
    if telegram_ok and (who.preferred_channel == ChannelName.telegram or not sms_ok):
        return ChannelName.telegram, str(who.telegram_chat_id)
    if who.phone:  # even when blocked: the row fails, and the failure is seen
        return ChannelName.sms, who.phone
    return ChannelName.console, console_address(who)
