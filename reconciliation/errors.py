"""Errors of reconciliation's breaks workflow: stable codes, mapped to RFC 9457 by the API (they
are ClearingErrors) and to one line by the command. A finding is never an error: it is a break."""

from __future__ import annotations

from clearing.errors import Conflict, InvalidRequest, NotFound, Unavailable


class BreakNotFound(NotFound):
    code = "break_not_found"
    title = "No such break"


class RunNotFound(NotFound):
    code = "run_not_found"
    title = "No such reconciliation run"


class BreakClosed(Conflict):
    code = "break_closed"
    title = "The break is already closed"


class NotASuspectedClone(Conflict):
    code = "break_not_a_suspected_clone"
    title = "Only a suspected clone can put a card on the deny list"


class NoteInvalid(InvalidRequest):
    code = "break_note_invalid"
    title = "Say who and why"


class BillerUnreachable(Unavailable):
    """A biller's confirmation file could not be read: the run cannot say what it confirmed."""

    code = "biller_file_unavailable"
    title = "A biller's confirmation file cannot be fetched"


class SourcesNotReached(Unavailable):
    """`onecard reconcile` finished, but an outside source (Stripe, a biller) did not answer: the
    run and its breaks are stored, the checks that needed the source were not done. The command
    fails so that a finance officer's script notices."""

    code = "source_not_reached"
    title = "An outside source was not reached"
