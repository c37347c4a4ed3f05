"""One error base for every failure of an outside system: vending, billing, each payment
provider, each SMS provider.

Each family keeps its own classes (utility.vending.base.VendingError and its refusals,
utility.billing.BillingError, utility.payments.base.PaymentError, sms.client.SmsError), so
a caller still catches what it knows; they all derive from ``OutsideError``, and what a
caller may do next is said by two fields, never guessed from a class name:

- ``retryable``: the same call may succeed later (the system is down, overloaded, did not
  answer in time). Job-level retries, the breaker and the customer's "try later" key on it.
- not retryable: the system answered and said no (an unknown meter, an amount too low, a
  refused number), or we cannot tell whether it acted (an SMS whose answer was lost:
  ``unconfirmed``). Asking again would fail the same way, or do it twice.

``Unavailable`` is the one "cannot answer now" error: the vending, billing and payment
families' own (BackendUnavailable, BillingUnavailable, ProviderUnavailable) derive from it,
and the seam (utility.calls) raises it, in the family's own class, when it does not call
at all (an open breaker, an operator switch).

``system`` names the outside system (``vending``, ``billing``, ``payments:<provider>``,
``sms:<provider>``): a family states its default and the seam stamps the precise one on
whatever passes through it.
"""
from __future__ import annotations


class OutsideError(Exception):
    """An outside system failed to do what was asked. See the module docstring."""

    system: str = ""  # vending | billing | payments:<provider> | sms:<provider>
    code: str = "outside_error"  # what went wrong, for the customer's message and the logs
    retryable: bool = False  # the same call may succeed later
    unconfirmed: bool = False  # the system may have acted although we never heard it say so
    timed_out: bool = False  # set by the seam: the call failed after its whole time bound

    def __init__(self, message: str = "", *, system: str | None = None, code: str | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(*((message,) if message else ()))
        # Instance values only when given: a class states its own defaults above.
        if system is not None:
            self.system = system
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class Unavailable(OutsideError):
    """The outside system cannot answer now; the same call may succeed later."""

    code = "unavailable"
    retryable = True


def retryable(error: BaseException) -> bool:
    """Whether ``error`` is an outside failure worth trying again later."""
    return isinstance(error, OutsideError) and error.retryable
