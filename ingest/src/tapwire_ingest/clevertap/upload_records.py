"""Validation of CleverTap upload records into canonical envelopes.

This loop runs once per ingested record, so it is hand-written over the plain dicts orjson produces rather
than pydantic models: it rejects a record with the documented code as soon as one check fails, and the
common case (short strings, a handful of properties) touches each value once.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from tapwire_core.envelope import Envelope, Identities
from tapwire_ingest.clevertap import limits
from tapwire_ingest.clevertap import record_errors as rc
from tapwire_ingest.clevertap.record_errors import RecordRejected

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_DATE = re.compile(r"^\$D_-?[0-9]{1,12}$")
_GENDERS = frozenset({"M", "F", "O", "Male", "Female", "Other", "Others"})
_YES_NO = frozenset({"Y", "N"})
_EDUCATION = frozenset({"School", "College", "Graduate"})
_PROFILE_OPERATORS = frozenset({"$add", "$remove", "$incr", "$decr", "$delete"})
_IDENTITY_KEYS = (("identity", "identity"), ("objectId", "object_id"), ("FBID", "fbid"), ("GPID", "gpid"))
_CLIENT_ID_KEY = "evtId"
_MAX_CLIENT_ID_CHARS = 128


@dataclass(slots=True)
class UploadOutcome:
    accepted: list[Envelope] = field(default_factory=list)
    unprocessed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.unprocessed:
            return "success"
        return "partial" if self.accepted else "fail"


def validate_upload(
    records: list[Any], *, account_id: str, received_ms: int, request_digest: bytes
) -> UploadOutcome:
    """Split ``records`` into accepted envelopes and ``unprocessed`` entries in CleverTap's response shape.

    ``request_digest`` identifies the request body: a record without ``ts`` gets its event id from it and
    its position, so a client retrying the same request produces the same ids.
    """
    outcome = UploadOutcome()
    for index, record in enumerate(records):
        try:
            outcome.accepted.append(
                parse_record(
                    record,
                    account_id=account_id,
                    received_ms=received_ms,
                    request_digest=request_digest,
                    position=index,
                )
            )
        except RecordRejected as rejected:
            outcome.unprocessed.append(
                {
                    "status": "fail",
                    "code": rejected.code,
                    "error": f"{rejected.reason}. Skipped record number : {index + 1}",
                    "record": record,
                }
            )
    return outcome


def parse_record(
    record: Any, *, account_id: str, received_ms: int, request_digest: bytes, position: int
) -> Envelope:
    """One record to an envelope; raises ``RecordRejected`` with the documented code."""
    if type(record) is not dict:
        raise RecordRejected(rc.UNKNOWN_RECORD_TYPE, "Record is not an object")
    kind = record.get("type")
    ts_ms = _timestamp_ms(record, received_ms)
    if kind == "event":
        ids = _identities(record)
        name, properties = _event(record)
    elif kind == "profile":
        ids = _identities(record)
        name, properties = "", _profile(record)
        ids = _with_contact(ids, properties)
    elif kind == "token":
        ids = _token_identities(record)
        name, properties = "", _token(record)
    else:
        raise RecordRejected(rc.UNKNOWN_RECORD_TYPE, "Record type must be event, profile or token")
    return Envelope(
        account_id=account_id,
        event_id=_event_id(record, account_id, request_digest, position),
        kind=kind,
        ids=ids,
        client_ts=ts_ms,
        received_ts=received_ms,
        source="clevertap",
        name=name,
        properties=properties,
    )


def _timestamp_ms(record: dict[str, Any], received_ms: int) -> int:
    if "ts" not in record:
        return received_ms
    ts = record["ts"]
    if type(ts) is not int or not 0 <= ts <= limits.MAX_TS_SECONDS:
        raise RecordRejected(rc.TS_INVALID, "ts must be a UNIX epoch in seconds")
    return ts * 1000


def _identity_text(value: Any) -> str:
    # Numeric identities (phone numbers, numeric customer ids) are common in the wild.
    if type(value) is str:
        text = value
    elif type(value) is int:
        text = str(value)
    else:
        raise RecordRejected(rc.IDENTITY_INVALID, "Identity must be a string")
    if not text.strip() or len(text) >= limits.MAX_IDENTITY_CHARS:
        raise RecordRejected(
            rc.IDENTITY_INVALID,
            f"Identity must be non-empty and under {limits.MAX_IDENTITY_CHARS} characters",
        )
    if not text.isprintable():
        raise RecordRejected(rc.IDENTITY_INVALID, "Identity contains control characters")
    return text


def _identities(record: dict[str, Any]) -> Identities:
    found: dict[str, str] = {}
    for wire, attr in _IDENTITY_KEYS:
        if wire in record:
            found[attr] = _identity_text(record[wire])
    if not found:
        raise RecordRejected(rc.IDENTITY_INVALID, "Record has no identity, objectId, FBID or GPID")
    return Identities(**found)


def _with_contact(ids: Identities, profile: dict[str, Any]) -> Identities:
    email, phone = profile.get("Email"), profile.get("Phone")
    if type(email) is not str and type(phone) is not str:
        return ids
    return Identities(
        identity=ids.identity,
        object_id=ids.object_id,
        fbid=ids.fbid,
        gpid=ids.gpid,
        email=email if type(email) is str else None,
        phone=phone if type(phone) is str else None,
    )


def _check_key(key: str) -> None:
    if not key or len(key) > limits.MAX_KEY_CHARS:
        raise RecordRejected(
            rc.BAD_EVENT_STRUCTURE, f"Property keys must be 1 to {limits.MAX_KEY_CHARS} characters"
        )


def _check_scalar(key: str, value: Any) -> None:
    kind = type(value)
    if kind is str:
        # Most values are short; only measure bytes when the characters could exceed the cap.
        if len(value) * 4 > limits.MAX_VALUE_BYTES and len(value.encode()) > limits.MAX_VALUE_BYTES:
            raise RecordRejected(
                rc.BAD_EVENT_STRUCTURE,
                f"Value of {key!r} is longer than {limits.MAX_VALUE_BYTES} bytes",
            )
    elif kind is float:
        if not math.isfinite(value):
            raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"Value of {key!r} is not a finite number")
    elif kind is not int and kind is not bool and value is not None:
        raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"Value of {key!r} must be a string, number or boolean")


def _check_flat_object(key: str, value: dict[str, Any]) -> None:
    for inner_key, inner in value.items():
        _check_key(inner_key)
        _check_scalar(f"{key}.{inner_key}", inner)


def _event(record: dict[str, Any], *, sdk_raised: bool = False) -> tuple[str, dict[str, Any]]:
    """The event's name and properties. ``sdk_raised``: the record comes from CleverTap's client SDKs, which
    raise the system events (``Notification Viewed``, …) that an upload may not forge."""
    name = record.get("evtName")
    if type(name) is not str or not name.strip():
        raise RecordRejected(rc.EVENT_NAME_MISSING, "Event name is missing")
    if len(name) > limits.MAX_EVENT_NAME_CHARS or not name.isprintable():
        raise RecordRejected(
            rc.BAD_EVENT_STRUCTURE,
            f"Event name must be printable and at most {limits.MAX_EVENT_NAME_CHARS} characters",
        )
    if name in limits.RESTRICTED_EVENT_NAMES and not sdk_raised:
        raise RecordRejected(rc.RESTRICTED_EVENT, f"{name!r} is a restricted system event")
    data = record.get("evtData", {})
    if type(data) is not dict:
        raise RecordRejected(rc.BAD_EVENT_STRUCTURE, "evtData must be an object")
    if len(data) > limits.MAX_EVENT_PROPERTIES:
        raise RecordRejected(
            rc.TOO_MANY_PROPERTIES, f"An event may carry at most {limits.MAX_EVENT_PROPERTIES} properties"
        )
    if sdk_raised:
        _check_object_count("evtData", data)
    for key, value in data.items():
        _check_key(key)
        if sdk_raised and (
            type(value) is dict or (type(value) is list and (name, key) != ("Charged", "Items"))
        ):
            _check_nested(key, value, depth=1)
        elif type(value) is list:
            _check_event_list(name, key, value)
        else:
            _check_scalar(key, value)
    return name, data


def _check_nested(key: str, value: Any, *, depth: int) -> None:
    """A nested property as CleverTap's client SDKs allow them (``isObjStructureValid`` in clevertap.js): objects
    at most ``MAX_NESTING`` levels below the record's properties (``depth`` is the level ``value`` sits at), at most ``MAX_OBJECT_KEYS`` objects or lists
    in one object, lists of scalars or objects, scalars under the usual limits."""
    if type(value) is dict:
        if depth > limits.MAX_NESTING:
            raise RecordRejected(
                rc.BAD_EVENT_STRUCTURE, f"{key!r} nests objects more than {limits.MAX_NESTING} levels deep"
            )
        if len(value) > limits.MAX_EVENT_PROPERTIES:
            raise RecordRejected(
                rc.TOO_MANY_PROPERTIES, f"{key!r} holds more than {limits.MAX_EVENT_PROPERTIES} properties"
            )
        _check_object_count(key, value)
        for inner_key, inner in value.items():
            _check_key(inner_key)
            _check_nested(f"{key}.{inner_key}", inner, depth=depth + 1)
    elif type(value) is list:
        if len(value) > limits.MAX_MULTI_VALUES:
            raise RecordRejected(
                rc.BAD_EVENT_STRUCTURE, f"List {key!r} has more than {limits.MAX_MULTI_VALUES} values"
            )
        for item in value:
            if type(item) is list:
                raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"List {key!r} may not hold lists")
            # A list adds no level: its objects sit where an object in its place would.
            _check_nested(key, item, depth=depth)
    else:
        _check_scalar(key, value)


def _check_object_count(key: str, value: dict[str, Any]) -> None:
    containers = sum(1 for inner in value.values() if type(inner) is dict or type(inner) is list)
    if containers > limits.MAX_OBJECT_KEYS:
        raise RecordRejected(
            rc.BAD_EVENT_STRUCTURE,
            f"{key!r} holds {containers} objects or lists; at most {limits.MAX_OBJECT_KEYS} are allowed",
        )


def checked_event(record: dict[str, Any], *, sdk_raised: bool) -> tuple[str, dict[str, Any]]:
    """An event record's ``evtName`` and ``evtData`` under the upload limits; raises ``RecordRejected``."""
    return _event(record, sdk_raised=sdk_raised)


def checked_profile(profile_data: Any) -> dict[str, Any]:
    """Client-SDK profile properties under the upload limits and reserved-field rules, nested objects allowed
    as the SDKs allow them; raises ``RecordRejected``."""
    return _profile({"profileData": profile_data}, nested=True)


def checked_token(token_data: Any) -> dict[str, Any]:
    """A push token's ``tokenData``; raises ``RecordRejected``."""
    return _token({"tokenData": token_data})


def _check_event_list(event_name: str, key: str, values: list[Any]) -> None:
    if event_name == "Charged" and key == "Items":
        if len(values) > limits.MAX_CHARGED_ITEMS:
            raise RecordRejected(
                rc.BAD_EVENT_STRUCTURE, f"Charged may carry at most {limits.MAX_CHARGED_ITEMS} items"
            )
        for item in values:
            if type(item) is not dict:
                raise RecordRejected(rc.BAD_EVENT_STRUCTURE, "Each Charged item must be an object")
            _check_flat_object(key, item)
        return
    if len(values) > limits.MAX_MULTI_VALUES:
        raise RecordRejected(
            rc.BAD_EVENT_STRUCTURE, f"List {key!r} has more than {limits.MAX_MULTI_VALUES} values"
        )
    for value in values:
        if type(value) is list or type(value) is dict:
            raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"List {key!r} may hold only scalar values")
        _check_scalar(key, value)


def _profile(record: dict[str, Any], *, nested: bool = False) -> dict[str, Any]:
    """``nested``: the record comes from a client SDK, whose profiles may hold nested objects."""
    data = record.get("profileData")
    if type(data) is not dict:
        raise RecordRejected(rc.BAD_EVENT_STRUCTURE, "profileData must be an object")
    if len(data) > limits.MAX_PROFILE_KEYS:
        raise RecordRejected(
            rc.TOO_MANY_PROPERTIES, f"A profile may carry at most {limits.MAX_PROFILE_KEYS} properties"
        )
    for key, value in data.items():
        _check_key(key)
        if nested and type(value) is dict and not (len(value) == 1 and next(iter(value)).startswith("$")):
            _check_nested(key, value, depth=1)
        elif type(value) is dict:
            _check_profile_operator(key, value)
        elif type(value) is list:
            _check_string_list(key, value)
        else:
            _check_scalar(key, value)
            _check_reserved(key, value)
    return data


def _check_string_list(key: str, values: list[Any]) -> None:
    if len(values) > limits.MAX_MULTI_VALUES:
        raise RecordRejected(
            rc.BAD_EVENT_STRUCTURE, f"Multi-value {key!r} has more than {limits.MAX_MULTI_VALUES} values"
        )
    for value in values:
        if type(value) is not str:
            raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"Multi-value {key!r} may hold only strings")
        _check_scalar(key, value)


def _check_profile_operator(key: str, value: dict[str, Any]) -> None:
    if len(value) != 1:
        raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"Value of {key!r} must be a scalar or one operator")
    ((op, operand),) = value.items()
    if op not in _PROFILE_OPERATORS:
        raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"Unknown operator {op!r} on {key!r}")
    if op in ("$add", "$remove"):
        if type(operand) is str:
            _check_scalar(key, operand)
        elif type(operand) is list:
            _check_string_list(key, operand)
        else:
            raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"{op} on {key!r} takes a string or list of strings")
    elif op in ("$incr", "$decr") and (type(operand) not in (int, float) or not math.isfinite(operand)):
        raise RecordRejected(rc.BAD_EVENT_STRUCTURE, f"{op} on {key!r} takes a number")


def _check_reserved(key: str, value: Any) -> None:
    """A scalar under a reserved profile key (``Email``, ``Phone``, ``Gender``, …) must have its documented form."""
    reserved = _RESERVED_FIELDS.get(key)
    if reserved is not None and not reserved.valid(value):
        raise RecordRejected(reserved.code, reserved.message)


def _valid_age(value: Any) -> bool:
    if type(value) is int:
        return 0 <= value <= 150
    # A captured real upload sent "18" as a string and was accepted.
    return type(value) is str and value.isdigit() and int(value) <= 150


def _matching(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda value: type(value) is str and pattern.match(value) is not None


@dataclass(frozen=True, slots=True)
class _ReservedField:
    """The form a reserved profile field's value must have, and the rejection a value of another form gets."""

    valid: Callable[[Any], bool]
    code: int
    message: str


_RESERVED_FIELDS: Final[dict[str, _ReservedField]] = {
    "Email": _ReservedField(
        _matching(_EMAIL), rc.EMAIL_INVALID, "Profile data is incorrect. Email is not valid"
    ),
    "Phone": _ReservedField(
        _matching(_PHONE),
        rc.PHONE_INVALID,
        "Profile data is incorrect. Phone must be +<country code><number>",
    ),
    "Gender": _ReservedField(
        _GENDERS.__contains__, rc.GENDER_INVALID, "Profile data is incorrect. Gender must be M or F"
    ),
    "Age": _ReservedField(_valid_age, rc.AGE_INVALID, "Profile data is incorrect. Age must be an integer"),
    "Employed": _ReservedField(
        _YES_NO.__contains__, rc.EMPLOYED_INVALID, "Profile data is incorrect. Employed must be Y or N"
    ),
    "Married": _ReservedField(
        _YES_NO.__contains__, rc.MARRIED_INVALID, "Profile data is incorrect. Married must be Y or N"
    ),
    "Education": _ReservedField(
        _EDUCATION.__contains__,
        rc.EDUCATION_INVALID,
        "Profile data is incorrect. Education must be School, College or Graduate",
    ),
    "DOB": _ReservedField(
        _matching(_DATE), rc.BAD_EVENT_STRUCTURE, "Profile data is incorrect. DOB must be $D_<epoch>"
    ),
}


def _token_identities(record: dict[str, Any]) -> Identities:
    object_id = record.get("objectId")
    if type(object_id) is not str or not object_id.strip() or len(object_id) >= limits.MAX_IDENTITY_CHARS:
        raise RecordRejected(rc.TOKEN_OBJECT_ID_INVALID, "Token records need a valid objectId")
    return Identities(object_id=object_id)


def _token(record: dict[str, Any]) -> dict[str, Any]:
    data = record.get("tokenData")
    if type(data) is not dict:
        raise RecordRejected(rc.TOKEN_DATA_INVALID, "tokenData must be an object")
    token = data.get("id")
    if type(token) is not str or not token:
        raise RecordRejected(rc.TOKEN_ID_MISSING, "tokenData.id is missing")
    if len(token) > 4096:
        raise RecordRejected(rc.TOKEN_DATA_INVALID, "tokenData.id is too long")
    token_type = data.get("type")
    if token_type is None:
        raise RecordRejected(rc.TOKEN_TYPE_MISSING, "tokenData.type is missing")
    if token_type not in limits.TOKEN_TYPES:
        raise RecordRejected(rc.TOKEN_TYPE_INVALID, f"tokenData.type {token_type!r} is not valid")
    if token_type == "chrome":
        keys = data.get("keys")
        if type(keys) is not dict or type(keys.get("p256dh")) is not str or type(keys.get("auth")) is not str:
            raise RecordRejected(rc.TOKEN_DATA_INVALID, "chrome tokens need keys.p256dh and keys.auth")
    return data


def _event_id(record: dict[str, Any], account_id: str, request_digest: bytes, position: int) -> str:
    client_id = record.get(_CLIENT_ID_KEY)
    if type(client_id) is str and 0 < len(client_id) <= _MAX_CLIENT_ID_CHARS:
        return client_id
    digest = hashlib.blake2b(digest_size=16)
    digest.update(account_id.encode())
    digest.update(b"\x00")
    if "ts" not in record:
        # Without a client timestamp two identical records are only told apart by the request they came in.
        digest.update(request_digest)
        digest.update(position.to_bytes(4, "big"))
    digest.update(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()
