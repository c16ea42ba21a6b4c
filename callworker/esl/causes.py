"""FreeSWITCH's hangup causes, the one table: names, numbers and the Q.850 value of each.

From FreeSWITCH 1.10's ``switch_types.h`` (``switch_call_cause_t``) and the names its
``CAUSE_CHART`` prints (``switch_channel.c``). Pure data: the contract validates the
``hangup`` command's cause against it, CDRs built without FreeSWITCH read their Q.850
value from it, and the simulator ends its channels by it.
"""

from __future__ import annotations

__all__ = ["CAUSES", "HANGUP_CAUSES", "NORMAL_CLEARING", "cause_named", "q850"]

NORMAL_CLEARING = "NORMAL_CLEARING"

CAUSES: dict[str, int] = {
    "NONE": 0, "UNALLOCATED_NUMBER": 1, "NO_ROUTE_TRANSIT_NET": 2, "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6, "CALL_AWARDED_DELIVERED": 7, "NORMAL_CLEARING": 16, "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18, "NO_ANSWER": 19, "SUBSCRIBER_ABSENT": 20, "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22, "REDIRECTION_TO_NEW_DESTINATION": 23, "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28, "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30, "NORMAL_UNSPECIFIED": 31, "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38, "NORMAL_TEMPORARY_FAILURE": 41, "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43, "REQUESTED_CHAN_UNAVAIL": 44, "PRE_EMPTED": 45,
    "FACILITY_NOT_SUBSCRIBED": 50, "OUTGOING_CALL_BARRED": 52, "INCOMING_CALL_BARRED": 54,
    "BEARERCAPABILITY_NOTAUTH": 57, "BEARERCAPABILITY_NOTAVAIL": 58, "SERVICE_UNAVAILABLE": 63,
    "BEARERCAPABILITY_NOTIMPL": 65, "CHAN_NOT_IMPLEMENTED": 66, "FACILITY_NOT_IMPLEMENTED": 69,
    "SERVICE_NOT_IMPLEMENTED": 79, "INVALID_CALL_REFERENCE": 81, "INCOMPATIBLE_DESTINATION": 88,
    "INVALID_MSG_UNSPECIFIED": 95, "MANDATORY_IE_MISSING": 96, "MESSAGE_TYPE_NONEXIST": 97,
    "WRONG_MESSAGE": 98, "IE_NONEXIST": 99, "INVALID_IE_CONTENTS": 100, "WRONG_CALL_STATE": 101,
    "RECOVERY_ON_TIMER_EXPIRE": 102, "MANDATORY_IE_LENGTH_ERROR": 103, "PROTOCOL_ERROR": 111,
    "INTERWORKING": 127, "SUCCESS": 142, "ORIGINATOR_CANCEL": 487, "CRASH": 700,
    "SYSTEM_SHUTDOWN": 701, "LOSE_RACE": 702, "MANAGER_REQUEST": 703, "BLIND_TRANSFER": 800,
    "ATTENDED_TRANSFER": 801, "ALLOTTED_TIMEOUT": 802, "USER_CHALLENGE": 803, "MEDIA_TIMEOUT": 804,
    "PICKED_OFF": 805, "USER_NOT_REGISTERED": 806, "PROGRESS_TIMEOUT": 807, "INVALID_GATEWAY": 808,
    "GATEWAY_DOWN": 809, "INVALID_URL": 810, "INVALID_PROFILE": 811, "NO_PICKUP": 812,
    "SRTP_READ_ERROR": 813, "BOWOUT": 814, "BUSY_EVERYWHERE": 815, "DECLINE": 816,
    "DOES_NOT_EXIST_ANYWHERE": 817, "NOT_ACCEPTABLE": 818, "UNWANTED": 819, "NO_IDENTITY": 820,
    "BAD_IDENTITY_INFO": 821, "UNSUPPORTED_CERTIFICATE": 822, "INVALID_IDENTITY": 823,
    "STALE_DATE": 824, "REJECT_ALL": 825,
}

# The causes a call can be ended with (NONE is "no cause yet", never an ending).
HANGUP_CAUSES: frozenset[str] = frozenset(CAUSES) - {"NONE"}

_BY_NUMBER = {number: name for name, number in CAUSES.items()}


def q850(cause: str | None) -> int | None:
    """The ``hangup_cause_q850`` FreeSWITCH writes: the cause's number up to 127, above it 16.

    None for a name FreeSWITCH does not know.
    """
    number = CAUSES.get(cause or "")
    if number is None:
        return None
    return number if number <= CAUSES["INTERWORKING"] else CAUSES[NORMAL_CLEARING]


def cause_named(text: str | None) -> str | None:
    """The cause a name (any case) or a number stands for, as ``switch_channel_str2cause`` reads it."""
    if not text:
        return None
    name = text.strip().upper()
    if name in CAUSES:
        return name
    return _BY_NUMBER.get(int(name)) if name.isdigit() else None
