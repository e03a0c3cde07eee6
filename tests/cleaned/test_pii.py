"""PII placeholders replace what is personal and leave versions, dates and private IPs alone."""

from assets.cleaned.pii import PiiPolicy, redact


def test_emails_phones_and_public_ips_are_replaced_with_counts() -> None:
    text = (
        "Write to jane.doe+lists@example.org or call (650) 253-0000 / +49 30 12345678. "
        "Our server is 8.8.8.8 and 2001:4860:4860::8888 is not matched as full v6 here."
    )
    out = redact(text, PiiPolicy())
    assert "jane.doe" not in out.text and "<EMAIL>" in out.text
    assert "253-0000" not in out.text and "12345678" not in out.text
    assert "8.8.8.8" not in out.text
    assert (out.emails, out.phones) == (1, 2)
    assert out.ips >= 1


def test_versions_dates_and_private_addresses_survive() -> None:
    text = "apt 2.6.2 was released on 2023-01-15; the router is 192.168.1.1 and 127.0.0.1."
    out = redact(text, PiiPolicy())
    assert out.text == text
    assert (out.emails, out.phones, out.ips) == (0, 0, 0)


def test_each_kind_can_be_switched_off() -> None:
    out = redact("mail me: a@b.io", PiiPolicy(emails=False))
    assert out.text == "mail me: a@b.io" and out.emails == 0
