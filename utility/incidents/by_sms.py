"""INFO by SMS: the incidents under way where the sender lives.

A keyword of the inbound SMS channel (sms.keywords), in any language, registered from this
package's init_app. The sender's regions are those of its accounts (the profile's ``regions``
field, kept by the customer import) and those it subscribed to; the reply lists the
incidents under way in them, from this process's copy (no round trip for the incidents),
else says there is none. One segment (texts.info_reply).
"""
from __future__ import annotations

from sms.keywords import Inbound
from utility.incidents import texts

WORD = "INFO"


def on_sms(message: Inbound) -> str:
    from utility.services import services

    incidents = services().incidents
    under_way = incidents.active_for_regions(incidents.regions_of(message.phone))
    return texts.info_reply(message.lang, under_way, incidents.tz)
