"""PII redaction: e-mail addresses, phone numbers and public IP addresses become placeholders.

FineWeb anonymises e-mails and public IPs; we add phone numbers, found with Google's
libphonenumber rules (the `phonenumbers` package) rather than a home-made regex, so version
numbers and dates are not mistaken for phones.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import phonenumbers

EMAIL = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b"
)
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
IPV6 = re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}\b")

EMAIL_PLACEHOLDER = "<EMAIL>"
PHONE_PLACEHOLDER = "<PHONE>"
IP_PLACEHOLDER = "<IP_ADDRESS>"


@dataclass(frozen=True)
class PiiPolicy:
    emails: bool = True
    phones: bool = True
    ips: bool = True
    phone_region: str = "US"  # numbers without a +country prefix are read in this region


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str
    emails: int
    phones: int
    ips: int


def redact(text: str, policy: PiiPolicy) -> Redaction:
    emails = phones = ips = 0
    if policy.emails:
        text, emails = EMAIL.subn(EMAIL_PLACEHOLDER, text)
    if policy.ips:
        text, ips = _redact_public_ips(text)
    if policy.phones:
        text, phones = _redact_phones(text, policy.phone_region)
    return Redaction(text, emails, phones, ips)


def _redact_public_ips(text: str) -> tuple[str, int]:
    """Private, loopback and documentation addresses are not personal data; keep them."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        try:
            address = ipaddress.ip_address(match.group(0))
        except ValueError:
            return match.group(0)
        if not address.is_global:
            return match.group(0)
        count += 1
        return IP_PLACEHOLDER

    text = IPV4.sub(replace, text)
    return IPV6.sub(replace, text), count


def _redact_phones(text: str, region: str) -> tuple[str, int]:
    if sum(c.isdigit() for c in text) < 7:
        return text, 0
    matches = list(phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID))
    for match in reversed(matches):
        text = text[: match.start] + PHONE_PLACEHOLDER + text[match.end :]
    return text, len(matches)
