"""Listener events: what is stored, how users and prompts are made safe, and the region's log.

An accepted event is stored as an `Event`: the user token replaced by a keyed hash
(HMAC-SHA256 with a secret from settings, so nobody without the key can link a hash to a
token, and every edge of a region computes the same hash), prompt text PII-masked, the
region and the time it was received added. Events go to the region's `EventLog`:

- `RedisEventLog`: Redis Streams, one per partition, with consumer groups (`redis_log`).
- `LocalEventLog`: the embedded default, one SQLite file with the same interface, for a node
  without Redis (`local_log`).

    schema      EventIn (the wire), Event (as stored), SCHEMA_VERSION
    privacy     mask_pii, Pseudonymizer, load_or_make_key
    log         the EventLog protocol, Entry, Delivery, id_order
    redis_log   RedisEventLog
    local_log   LocalEventLog
"""

from regional.events.local_log import LocalEventLog
from regional.events.log import Delivery, Entry, EventLog, id_order
from regional.events.privacy import Pseudonymizer, load_or_make_key, mask_pii
from regional.events.redis_log import RedisEventLog
from regional.events.schema import SCHEMA_VERSION, Event, EventIn, EventType

__all__ = [
    "SCHEMA_VERSION",
    "Delivery",
    "Entry",
    "Event",
    "EventIn",
    "EventLog",
    "EventType",
    "LocalEventLog",
    "Pseudonymizer",
    "RedisEventLog",
    "id_order",
    "load_or_make_key",
    "mask_pii",
]
