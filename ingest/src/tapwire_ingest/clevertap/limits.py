"""Documented CleverTap upload limits (see the CleverTap API reference, section 1.4)."""

from typing import Final

MAX_RECORDS_PER_UPLOAD: Final = 1000
# Not CleverTap's: bounds on a body's JSON, checked before it is decoded. 1,000 records of 200 values each, and a
# record's deepest valid value (a Charged item, a profile operator's list) sits 5 levels down.
MAX_UPLOAD_VALUES: Final = 200_000
MAX_UPLOAD_DEPTH: Final = 32
MAX_IDENTITY_CHARS: Final = 120
MAX_EVENT_NAME_CHARS: Final = 120
MAX_KEY_CHARS: Final = 120
MAX_VALUE_BYTES: Final = 512
MAX_EVENT_PROPERTIES: Final = 256
MAX_PROFILE_KEYS: Final = 256
MAX_MULTI_VALUES: Final = 100
MAX_CHARGED_ITEMS: Final = 1000
# Nested properties from CleverTap's client SDKs (their isObjStructureValid): levels below the record's
# properties, and objects or lists per object.
MAX_NESTING: Final = 3
MAX_OBJECT_KEYS: Final = 5
# Epoch seconds; anything larger is almost certainly milliseconds sent by mistake.
MAX_TS_SECONDS: Final = 9_999_999_999

TOKEN_TYPES: Final = frozenset({"fcm", "gcm", "apns", "wns", "mpns", "chrome"})

# Events CleverTap's own SDKs raise; an upload may not forge them (code 513).
RESTRICTED_EVENT_NAMES: Final = frozenset(
    {
        "App Launched",
        "App Installed",
        "App Uninstalled",
        "App Version Changed",
        "Notification Sent",
        "Notification Viewed",
        "Notification Clicked",
        "Notification Delivered",
        "UTM Visited",
        "Stayed",
        "Session Concluded",
        "Channel Unsubscribed",
        "Reply Received",
        "Geocluster Entered",
        "Geocluster Exited",
    }
)
