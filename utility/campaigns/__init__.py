"""Free-credit campaigns: an operator defines one (model), customers register by USSD or SMS
(service: one Redis script per registration), a background pump delivers each benefit
(jobs), operators watch and steer it (admin, cli). The customer's words are in texts/.

This module stays light (app.py imports DEFAULTS before anything is configured).
"""
from __future__ import annotations

from typing import Any

# Configuration of campaigns, read from GUICHET_<NAME> like the rest. Each default is
# stated here and nowhere else: app.DEFAULTS merges this mapping. (The pace of fulfilment
# is the SMS outbox's bulk share of the send rate: sms.DEFAULTS SMS_BULK_SHARE.)
DEFAULTS: dict[str, Any] = {
    # What an accepted registration promises: the credit arrives within this many hours.
    "CAMPAIGN_DELIVERY_HOURS": 48,
}
