"""The channel variables a sofia leg collects over its life, and its CDR.

Values and their order follow FreeSWITCH 1.10 (outbound legs), capture 15 (an
inbound leg handed to a socket) and capture 13 (the
CDR block of CHANNEL_HANGUP_COMPLETE). Times are microseconds; FreeSWITCH derives
seconds and milliseconds by truncating each timestamp first, then subtracting.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from callworker.simulator.causes import q850
from callworker.simulator.channel import Channel

__all__ = ["Leg", "creation_vars", "inbound_vars", "progress_vars", "media_vars", "hangup_vars",
           "rtp_stats", "cdr_vars", "REMOTE_IP"]

REMOTE_IP = "203.0.113.10"


@dataclass(frozen=True, slots=True)
class Leg:
    """Where the call goes, as read from the dial string."""

    profile: str
    gateway: str | None
    host: str
    local_ip: str


def _sdp(origin: str, ip: str, port: int) -> str:
    session = random.randint(1_600_000_000, 1_700_000_000)
    lines = [
        "v=0", f"o={origin} {session} {session + 1} IN IP4 {ip}", f"s={origin}", f"c=IN IP4 {ip}",
        "t=0 0", f"m=audio {port} RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


def creation_vars(ch: Channel, leg: Leg, block: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Variables present at CHANNEL_CREATE: the leg's own, then the dial string's."""
    port = random.randrange(16384, 32768, 2)
    gateway = []
    if leg.gateway:
        gateway = [("sip_gateway_name", leg.gateway), ("gateway_name", leg.gateway)]
    return [
        ("direction", "outbound"), ("is_outbound", "true"), ("uuid", ch.uuid),
        ("call_uuid", ch.uuid), ("session_id", str(ch.session_id)), *gateway,
        ("sip_profile_name", leg.profile), ("sofia_profile_name", leg.profile),
        ("recovery_profile_name", leg.profile), ("text_media_flow", "disabled"),
        ("channel_name", ch.name), ("sip_destination_url", f"sip:{ch.number}@{leg.host}"),
        *block,
        ("originate_early_media", "true"), ("rtp_use_codec_string", "PCMU,PCMA"),
        ("local_media_ip", leg.local_ip), ("local_media_port", str(port)),
        ("advertised_media_ip", leg.local_ip), ("audio_media_flow", "sendrecv"),
        ("rtp_local_sdp_str", _sdp("FreeSWITCH", leg.local_ip, port)),
        ("sip_outgoing_contact_uri", f"<sip:mod_sofia@{leg.local_ip}:5080>"),
        ("sip_req_uri", f"{ch.number}@{leg.host}"), ("sip_to_host", leg.host),
        ("sip_from_host", leg.local_ip), ("sip_local_network_addr", leg.local_ip),
        ("sip_call_id", f"{random.getrandbits(64):016x}-{ch.session_id}@{leg.local_ip}"),
        ("sip_from_tag", f"{random.getrandbits(40):x}"),
    ]


def inbound_vars(ch: Channel, local_ip: str) -> list[tuple[str, str]]:
    """Variables sofia sets on a leg made from a carrier's INVITE (capture 15, 1.10 names)."""
    port = random.randrange(10000, 20000, 2)
    cid, number = ch.cid_num, ch.number
    tag = f"{random.getrandbits(40):x}"
    return [
        ("direction", "inbound"), ("uuid", ch.uuid), ("session_id", str(ch.session_id)),
        ("sip_from_user", cid), ("sip_from_uri", f"{cid}@{REMOTE_IP}"),
        ("sip_from_host", REMOTE_IP), ("text_media_flow", "disabled"), ("channel_name", ch.name),
        ("sip_call_id", f"{random.getrandbits(64):016x}@{REMOTE_IP}"),
        ("sip_local_network_addr", local_ip), ("sip_network_ip", REMOTE_IP),
        ("sip_network_port", "5060"), ("sip_invite_stamp", str(ch.created_us)),
        ("sip_received_ip", REMOTE_IP), ("sip_received_port", "5060"),
        ("sip_via_protocol", "udp"), ("sip_from_display", ch.cid_name),
        ("sip_full_from", f'"{ch.cid_name}" <sip:{cid}@{REMOTE_IP}>;tag={tag}'),
        ("sip_full_to", f"<sip:{number}@{local_ip}>"), ("sip_from_tag", tag),
        ("sip_req_user", number), ("sip_req_uri", f"{number}@{local_ip}"),
        ("sip_req_host", local_ip), ("sip_to_user", number), ("sip_to_uri", f"{number}@{local_ip}"),
        ("sip_to_host", local_ip), ("sip_contact_user", cid), ("sip_contact_port", "5060"),
        ("sip_contact_uri", f"{cid}@{REMOTE_IP}:5060"), ("sip_contact_host", REMOTE_IP),
        ("sip_via_host", REMOTE_IP), ("sip_via_port", "5060"), ("max_forwards", "69"),
        ("switch_r_sdp", _sdp("carrier", REMOTE_IP, port)), ("rtp_use_codec_string", "PCMU,PCMA"),
        ("ep_codec_string", "PCMU@8000h@20i@64000b,PCMA@8000h@20i@64000b"),
        ("endpoint_disposition", "DELAYED NEGOTIATION"), ("call_uuid", ch.uuid),
    ]


def progress_vars() -> list[tuple[str, str]]:
    return [("sip_to_tag", f"{random.getrandbits(48):x}"), ("sip_received_ip", REMOTE_IP),
            ("sip_received_port", "5060"), ("sip_via_protocol", "udp")]


def media_vars(disposition: str) -> list[tuple[str, str]]:
    """The far end's SDP and the codecs chosen: in a 183 (``EARLY MEDIA``) or a 200 (``ANSWER``)."""
    port = random.randrange(10000, 20000, 2)
    return [
        ("remote_media_ip", REMOTE_IP), ("remote_media_port", str(port)),
        ("rtp_audio_recv_pt", "0"), ("rtp_use_codec_name", "PCMU"), ("rtp_use_codec_rate", "8000"),
        ("rtp_use_codec_ptime", "20"), ("rtp_use_codec_channels", "1"),
        ("rtp_last_audio_codec_string", "PCMU@8000h@20i@1c"), ("read_codec", "PCMU"),
        ("original_read_codec", "PCMU"), ("read_rate", "8000"), ("original_read_rate", "8000"),
        ("write_codec", "PCMU"), ("write_rate", "8000"), ("dtmf_type", "rfc2833"),
        ("switch_r_sdp", _sdp("carrier", REMOTE_IP, port)), ("endpoint_disposition", disposition),
    ]


def hangup_vars(status: int | None, phrase: str, disposition: str | None,
                cause: str) -> list[tuple[str, str]]:
    """What sofia records about the end of the SIP dialog.

    As FreeSWITCH 1.10.12 writes them: a refused INVITE keeps the response
    (``sip_invite_failure_*`` and ``sip_term_*``); a CANCEL we sent, the 487 it
    brought; a BYE received, its 200; a BYE we sent, nothing but the disposition.
    ``sip_term_cause`` is the Q.850 value of the cause.
    """
    out: list[tuple[str, str]] = []
    if disposition == "send_cancel":
        return [("sip_hangup_disposition", disposition), ("sip_invite_failure_status", "487"),
                ("sip_invite_failure_phrase", "CANCEL")]
    if disposition == "recv_refuse" and status is not None:
        out += [("sip_hangup_disposition", disposition),
                ("sip_invite_failure_status", str(status)), ("sip_invite_failure_phrase", phrase)]
        disposition = None
    if status is not None:
        out += [("sip_term_status", str(status)), ("proto_specific_hangup_cause", f"sip:{status}"),
                ("sip_term_cause", str(q850(cause)))]
    if disposition:
        out.append(("sip_hangup_disposition", disposition))
    return out


def rtp_stats(ch: Channel, end_us: int) -> list[tuple[str, str]]:
    """RTP counters for the media time (50 packets of 160 bytes a second)."""
    media_s = (end_us - ch.media_us) / 1e6 if ch.media_us else 0.0
    packets = int(media_s * 50)
    count, raw, media, rtcp = str(packets), str(packets * 172), str(packets * 160), packets // 250
    out: list[tuple[str, str]] = []
    for way in ("in", "out"):
        out += [(f"rtp_audio_{way}_raw_bytes", raw), (f"rtp_audio_{way}_media_bytes", media),
                (f"rtp_audio_{way}_packet_count", count),
                (f"rtp_audio_{way}_media_packet_count", count)]
        zero: tuple[str, ...] = ("skip_packet_count", "jitter_packet_count", "dtmf_packet_count",
                "cng_packet_count", "flush_packet_count", "largest_jb_size")
        if way == "out":
            zero = ("skip_packet_count", "dtmf_packet_count", "cng_packet_count")
        out += [(f"rtp_audio_{way}_{name}", "0") for name in zero]
        if way == "in":
            out += [(f"rtp_audio_in_{name}", "0.00") for name in (
                "jitter_min_variance", "jitter_max_variance", "jitter_loss_rate",
                "jitter_burst_rate")]
            out += [("rtp_audio_in_mean_interval", "20.00" if packets else "0.00"),
                    ("rtp_audio_in_flaw_total", "0"), ("rtp_audio_in_quality_percentage", "100.00"),
                    ("rtp_audio_in_mos", "4.50")]
    return out + [("rtp_audio_rtcp_packet_count", str(rtcp)),
                  ("rtp_audio_rtcp_octet_count", str(rtcp * 52))]


def _stamp(us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us // 1_000_000))


def _spans(start: int, at: int) -> tuple[str, str, str]:
    """(seconds, milliseconds, microseconds) from start to at; zeros when at is unset."""
    if not at:
        return "0", "0", "0"
    seconds = at // 1_000_000 - start // 1_000_000
    return str(seconds), str(at // 1000 - start // 1000), str(at - start)


def cdr_vars(ch: Channel, last_app: str) -> list[tuple[str, str]]:
    """The CDR variables of CHANNEL_HANGUP_COMPLETE, in capture 13's order."""
    start, end, answered = ch.created_us, ch.hangup_us, ch.answered_us
    cause = ch.hangup_cause or "NORMAL_CLEARING"
    stamps = [("start_stamp", _stamp(start)), ("profile_start_stamp", _stamp(start))]
    for name, at in (("answer", answered), ("progress", ch.progress_us),
                     ("progress_media", ch.progress_media_us)):
        if at:
            stamps.append((f"{name}_stamp", _stamp(at)))
    stamps.append(("end_stamp", _stamp(end)))
    epochs: list[tuple[str, str]] = []
    for name, at in (("start", start), ("profile_start", start), ("answer", answered),
                     ("bridge", 0), ("last_hold", ch.last_hold_us)):
        epochs += [(f"{name}_epoch", str(at // 1_000_000)), (f"{name}_uepoch", str(at))]
    hold = ch.hold_accum_us
    epochs += [("hold_accum_seconds", str(hold // 1_000_000)), ("hold_accum_usec", str(hold)),
               ("hold_accum_ms", str(hold // 1000))]
    for name, at in (("resurrect", 0), ("progress", ch.progress_us),
                     ("progress_media", ch.progress_media_us), ("end", end)):
        epochs += [(f"{name}_epoch", str(at // 1_000_000)), (f"{name}_uepoch", str(at))]
    caller_id = f'"{ch.cid_name}" <{ch.cid_num}>'
    spans = {
        "duration": _spans(start, end), "bill": _spans(answered, end if answered else 0),
        "progress": _spans(start, ch.progress_us), "answer": _spans(start, answered),
        "wait": _spans(start, answered), "progress_media": _spans(start, ch.progress_media_us),
        "flow_bill": _spans(start, end if answered else 0),
    }
    names = ("bill", "progress", "answer", "wait", "progress_media", "flow_bill")
    durations = [("duration", spans["duration"][0])] + [(f"{n}sec", spans[n][0]) for n in names]
    durations += [("mduration", spans["duration"][1])] + [(f"{n}msec", spans[n][1]) for n in names]
    durations += [("uduration", spans["duration"][2])] + [(f"{n}usec", spans[n][2]) for n in names]
    return [
        ("hangup_cause", cause), ("hangup_cause_q850", str(q850(cause))),
        ("digits_dialed", "none"), *stamps, *epochs, ("last_app", last_app),
        ("caller_id", caller_id), *durations,
    ]
