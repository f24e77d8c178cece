"""The office's web console (served under /console by `checkin run`): officers and administrators in a browser.

Not to be confused with `checkin console --as`, the terminal chat (bot/channels/console.py). Every page asks the
same functions as the chat (handlers.officer.can_see, handlers.escalation.may_act, handlers.case_life ...):
the console is another face of them, never a second implementation.
"""
