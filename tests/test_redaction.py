"""Redaction (proxy.redaction): each kind's values are found and near misses are left alone;
mask and hash modes; operator patterns; records are redacted once, in place."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.config import ConfigError, load_settings
from proxy.config.model import REDACT_KINDS, RedactSettings
from proxy.redaction import BUILTIN_KINDS, Redactor, redact_record, redactor_for
from proxy.redaction.checksums import iban_ok, luhn_ok

ALL = Redactor(BUILTIN_KINDS)


def redacted(text: str, redactor: Redactor = ALL) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    return redactor.text(text, counts), counts


def only(kind: str) -> Redactor:
    return Redactor((kind,))


# Fake credentials in the real formats (none is a live key).
SECRETS = [
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0h",
    "sk-ant-api03-AbCdEf0123456789_abcdefghijklmnop-xyzXYZ0123",
    "sk-3f9a1c7e5b2d4f6a8c0e1a3b5d7f9e2c4a6b8d0f1e3a5c7",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "rk_test_51H8xYzAbCdEfGhIjKlMn",
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123",
    "glpat-xYz123AbC456dEf789gHi0",
    "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq",
    "gsk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_provider_keys_are_found_inside_prose(secret: str) -> None:
    """A key pasted into a message is replaced whole; the words around it stay."""
    out, counts = redacted(f"here is my key: {secret} - please help", only("secret"))
    assert out == "here is my key: [REDACTED:secret] - please help"
    assert counts == {"secret": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:secret]",
        ),
        ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
         '"SecretAccessKey": "[REDACTED:secret]"'),
        ("redis://:hunter2secret@cache:6379/0", "redis://:[REDACTED:secret]@cache:6379/0"),
        ("postgres://app:s3cr3t@db/prod", "postgres://app:[REDACTED:secret]@db/prod"),
        ("Authorization: Bearer abcDEF123456789xyzzz", "Authorization: Bearer [REDACTED:secret]"),
        ("AccountKey=" + "A" * 20 + "b" * 20 + "==;", "AccountKey=[REDACTED:secret];"),
    ],
)  # fmt: skip
def test_secrets_known_by_their_context_keep_the_context(text: str, expected: str) -> None:
    """Where only the surrounding name tells a secret, the name stays and the value goes."""
    assert redacted(text, only("secret"))[0] == expected


def test_private_key_blocks_are_removed_whole_or_to_their_end_when_cut() -> None:
    """A PEM private key goes whole; one cut short by capture.max_bytes goes to its end."""
    block = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nq9z+/=\n-----END RSA PRIVATE KEY-----"
    )
    assert (
        redacted(f"key:\n{block}\nthanks", only("secret"))[0] == "key:\n[REDACTED:secret]\nthanks"
    )
    cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9u"
    assert redacted(cut, only("secret"))[0] == "[REDACTED:secret]"
    public = (
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----"
    )
    assert redacted(public, only("secret"))[0] == public


@pytest.mark.parametrize(
    "text",
    [
        "task-management-and-scheduling-system",
        "sk-learn-is-a-great-python-library",
        "we ask-for-forgiveness-not-permission",
        "the risk-free-rate-of-return-is-low today",
        "AKIA is four letters",
        "see https://example.com/path?q=1",
        "a Bearer token is sent in the header",
        "eyJ alone is not a token",
        "ghp_tooShort123",
    ],
)
def test_words_that_only_look_like_key_prefixes_stay(text: str) -> None:
    """Kebab-case words, short prefixes, a URL without a password: not secrets."""
    assert redacted(text, only("secret")) == (text, {})


def test_emails_are_found_but_decorators_and_handles_are_not() -> None:
    """user@host.tld is an address; @decorators, @handles and a@b without a TLD are not."""
    text = "Mail alice.smith+tag@example.co.uk or Bob@Example.ORG; @app.route, @bob, a@b, x@y.z1"
    out, counts = redacted(text, only("email"))
    assert out == "Mail [REDACTED:email] or [REDACTED:email]; @app.route, @bob, a@b, x@y.z1"
    assert counts == {"email": 2}


@pytest.mark.parametrize(
    "phone",
    ["+44 20 7946 0958", "+1 (555) 123-4567", "+4915123456789", "(555) 123-4567",
     "555-123-4567", "555.123.4567", "+33 1 23 45 67 89"],
)  # fmt: skip
def test_phone_numbers_in_international_and_north_american_forms(phone: str) -> None:
    """With a + and a country code, or the (555) 123-4567 shapes."""
    assert redacted(f"call {phone}.", only("phone")) == ("call [REDACTED:phone].", {"phone": 1})


@pytest.mark.parametrize(
    "text",
    ["unix time 1700000000", "order 123456789012", "on 2024-01-15 at 10:30:00",
     "ssn-like 123-45-6789", "+5 points", "version 10.0.19041.1", "1,500,000 requests"],
)  # fmt: skip
def test_numbers_that_are_not_phone_numbers_stay(text: str) -> None:
    """Bare digit runs, dates, times and versions are not phones."""
    assert redacted(text, only("phone")) == (text, {})


def test_card_numbers_need_a_valid_luhn_check() -> None:
    """Test cards of each brand pass; one digit off, and the number stays."""
    cards = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011111111111117"]
    for card in cards:
        assert (
            redacted(f"card {card} ok", only("credit_card"))[0] == "card [REDACTED:credit_card] ok"
        )
    for near in ["4111 1111 1111 1112", "4111-1111 1111-1111", "1111111111111117", "41111111111"]:
        assert redacted(f"card {near} ok", only("credit_card")) == (f"card {near} ok", {})
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")


def test_ibans_need_their_checksum_and_a_known_country() -> None:
    """Printed and compact IBANs pass mod 97; a changed digit or an unknown country does not."""
    for iban in ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "NL91ABNA0417164300"]:
        assert redacted(f"pay to {iban}.", only("iban")) == ("pay to [REDACTED:iban].", {"iban": 1})
    for near in ["DE89 3704 0044 0532 0130 01", "GB82WEST12345698765433", "ZZ82WEST12345698765432"]:
        assert redacted(f"pay to {near}.", only("iban")) == (f"pay to {near}.", {})
    assert iban_ok("FR1420041010050500013M02606")
    assert not iban_ok("FR1420041010050500013M02607")


def test_ip_addresses_but_not_version_strings() -> None:
    """IPv4 and IPv6 addresses go; dotted versions, times and C++ scopes stay."""
    text = (
        "hosts 192.168.1.20, 10.0.0.1 and 2001:db8::8a2e:370:7334 and ::1; "
        "version 1.2.3.4, v1.2.3.4, 1.2.3.4.5, 999.1.1.1, 10:30:00, std::vector, a :: Int"
    )
    out, counts = redacted(text, only("ip"))
    assert out == (
        "hosts [REDACTED:ip], [REDACTED:ip] and [REDACTED:ip] and [REDACTED:ip]; "
        "version 1.2.3.4, v1.2.3.4, 1.2.3.4.5, 999.1.1.1, 10:30:00, std::vector, a :: Int"
    )
    assert counts == {"ip": 4}


def test_only_the_chosen_kinds_are_replaced() -> None:
    """The default kinds are secrets only: an email stays unless email is chosen."""
    text = "alice@example.com sent sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
    assert redacted(text, Redactor())[0] == "alice@example.com sent [REDACTED:secret]"
    assert redacted(text, Redactor(("email",)))[0].startswith("[REDACTED:email] sent sk-proj-")


def test_hash_mode_keeps_equal_values_equal_and_depends_on_the_key() -> None:
    """One address in two spellings hashes the same; another key gives other hashes."""
    one = Redactor(("email", "phone"), "hash", key=b"k1")
    out, counts = redacted("Alice@Example.com, alice@example.com, bob@example.com", one)
    first, second, third = out.split(", ")
    assert first == second != third
    assert first.startswith("[email:")
    assert len(first) == len("[email:") + 12 + 1
    assert counts == {"email": 3}
    assert redacted("+1 555 123 4567", one)[0] == redacted("+15551234567", one)[0]
    other = Redactor(("email",), "hash", key=b"k2")
    assert redacted("alice@example.com", other)[0] != first


def test_operator_patterns_are_their_own_kinds() -> None:
    """capture.redact.patterns adds named kinds, counted and masked under their names."""
    redactor = Redactor((), patterns={"ticket": r"TKT-[0-9]{6}", "employee": r"EMP[0-9]{4}"})
    out, counts = redacted("TKT-123456 by EMP0042 and TKT-1", redactor)
    assert out == "[REDACTED:ticket] by [REDACTED:employee] and TKT-1"
    assert counts == {"ticket": 1, "employee": 1}


def test_overlapping_values_become_one_token() -> None:
    """An email inside URL credentials, a card inside a phone-looking run: one token each."""
    out, counts = redacted("https://bob:pa55@example.com/x")
    assert "pa55" not in out
    assert "[REDACTED:" in out
    assert sum(counts.values()) >= 1
    again, more = redacted(out)
    assert again == out
    assert more == {}


def test_tokens_already_in_the_text_are_left_alone() -> None:
    """Redacting twice changes nothing more: our own tokens never match a pattern."""
    for redactor in (ALL, Redactor(BUILTIN_KINDS, "hash", key=b"k")):
        text = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z, +44 20 7946 0958, 4111111111111111"
        once, _ = redacted(text, redactor)
        assert redacted(once, redactor) == (once, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[api key]sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "[api key][REDACTED:secret]"),
        ("x]AKIAIOSFODNN7EXAMPLE", "x][REDACTED:secret]"),
        ("[me]jane.doe@example.com", "[me][REDACTED:email]"),
        ("[REDACTED:x]sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "[REDACTED:x][REDACTED:secret]"),
        ("jane.doe@example.com[REDACTED:x]", "[REDACTED:email][REDACTED:x]"),
        ("card 4111111111111111[note]", "card [REDACTED:credit_card][note]"),
    ],
)
def test_a_value_next_to_a_bracket_or_a_token_is_found(text: str, expected: str) -> None:
    """Brackets are boundaries like any punctuation; a token next to a value is kept as it is,
    and redacting the result again changes nothing."""
    for redactor in (ALL, Redactor(BUILTIN_KINDS, "hash", key=b"k")):
        once, counts = redacted(text, redactor)
        if redactor is ALL:
            assert once == expected
        assert sum(counts.values()) == 1
        assert redacted(once, redactor) == (once, {})


def test_nested_values_are_redacted_and_keys_kept() -> None:
    """Every string of a JSON value is redacted, at any depth; keys and numbers stay."""
    value = {"messages": [{"role": "user", "content": [{"type": "text", "text": "me@x.org"}]}],
             "n": 3, "me@x.org": True}  # fmt: skip
    counts: dict[str, int] = {}
    out = Redactor(("email",)).value(value, counts)
    assert out["messages"][0]["content"][0]["text"] == "[REDACTED:email]"
    assert out["n"] == 3
    assert out["me@x.org"] is True
    assert counts == {"email": 1}
    deep: Any = "me@x.org"
    for _ in range(100):
        deep = [deep]
    flat = Redactor(("email",)).value(deep, {})
    assert "me@x.org" not in str(flat)


# ----------------------------------------------------------------------------- records


def span_with(input_: Any, output_text: str | None) -> dict[str, Any]:
    output = {"text": output_text, "tool_calls": []}
    return {"id": "span:t:s", "kind": "span", "trace": {"trace_id": "t", "attributes": {}},
            "span": {"span_id": "s", "model": "m", "usage": {"input_tokens": 3},
                     "input": input_, "output": output}}  # fmt: skip


def test_a_span_record_is_redacted_once_in_place_with_its_counts() -> None:
    """Input and output are redacted, counts land in span.redacted; the second call is a no-op."""
    redactor = Redactor(("email", "secret"))
    record = span_with({"messages": [{"role": "user", "content": "I am a@b.io"}]}, "hi a@b.io")
    redact_record(redactor, record)
    span = record["span"]
    assert span["input"]["messages"][0]["content"] == "I am [REDACTED:email]"
    assert span["output"]["text"] == "hi [REDACTED:email]"
    assert span["redacted"] == {"email": 2}
    assert span["model"] == "m"
    assert span["usage"] == {"input_tokens": 3}
    span["input"] = "c@d.io"  # marked: not redacted again
    redact_record(redactor, record)
    assert span["input"] == "c@d.io"
    assert span["redacted"] == {"email": 2}


def test_a_span_error_is_redacted_and_counted() -> None:
    """A provider's error message may quote the input: it is redacted like the output."""
    record = span_with(None, None)
    record["span"]["error"] = "invalid_request_error: bad value 'a@b.io' in messages[0]"
    redact_record(Redactor(("email",)), record)
    assert (
        record["span"]["error"]
        == "invalid_request_error: bad value '[REDACTED:email]' in messages[0]"
    )
    assert record["span"]["redacted"] == {"email": 1}


def test_a_feedback_record_has_its_comment_redacted() -> None:
    """The comment is redacted; the vote and other attributes stay."""
    record = {
        "kind": "feedback",
        "event": {
            "attributes": {
                "user_feedback": "negative",
                "user_feedback_comment": "mail me: a@b.io",
                "k": "a@b.io",
            }
        },
    }
    redact_record(Redactor(("email",)), record)
    attributes = record["event"]["attributes"]
    assert attributes == {
        "user_feedback": "negative",
        "user_feedback_comment": "mail me: [REDACTED:email]",
        "k": "a@b.io",
    }
    assert record["event"]["redacted"] == {"email": 1}  # fmt: skip


def test_a_score_record_has_its_explanation_redacted() -> None:
    """An evaluator score: the explanation is redacted, counted in the score; name, value and
    label stay."""
    score = {"name": "judge", "value": 0.1, "label": "fail", "explanation": "a@b.io was rude"}
    record = {"kind": "score", "trace_id": "t", "score": dict(score)}
    redact_record(Redactor(("email",)), record)
    assert record["score"] == {**score, "explanation": "[REDACTED:email] was rude",
                               "redacted": {"email": 1}}  # fmt: skip


def test_other_record_kinds_have_explanations_and_comments_redacted() -> None:
    """A record kind added later: strings under explanation or comment keys, at any depth."""
    record = {"kind": "verdict", "verdict": {"comment": "a@b.io", "who": "a@b.io"}}
    redact_record(Redactor(("email",)), record)
    assert record["verdict"] == {"comment": "[REDACTED:email]", "who": "a@b.io"}
    assert record["redacted"] == {"email": 1}


def test_a_failing_redaction_drops_the_text_instead_of_storing_it() -> None:
    """Should redaction break on a record, its text is dropped, never stored as it came."""

    class Broken(Redactor):
        def value(self, value: Any, counts: dict[str, int], depth: int = 0) -> Any:
            raise RuntimeError("bug")

    record = span_with("a@b.io", "a@b.io")
    redact_record(Broken(("email",)), record)
    assert record["span"]["input"] is None
    assert record["span"]["output"] is None
    assert record["span"]["redacted"] == {"unredactable": 1}


# ----------------------------------------------------------------------------- settings


def test_redaction_settings_load_from_toml_and_environment(tmp_path: Any) -> None:
    """[capture.redact] reads kinds, mode, key and patterns; the environment overrides."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[capture.redact]\nkinds = ["email", "ip"]\nmode = "hash"\nkey = "k"\n'
        'patterns = { ticket = "TKT-[0-9]+" }\n'
    )
    redact = load_settings(path, env={}).capture.redact
    assert redact == RedactSettings(("email", "ip"), "hash", {"ticket": "TKT-[0-9]+"}, "k")
    env = {"FEEDBACK_PROXY_CAPTURE__REDACT__KINDS": "secret,phone",
           "FEEDBACK_PROXY_CAPTURE__REDACT__PATTERNS__ORDER": "ORD[0-9]{5}"}  # fmt: skip
    redact = load_settings(path, env=env).capture.redact
    assert redact.kinds == ("secret", "phone")
    assert redact.patterns == {"ticket": "TKT-[0-9]+", "order": "ORD[0-9]{5}"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"capture.redact.kinds": ["secret", "ssn"]}, "capture.redact.kinds: must be one of"),
        ({"capture.redact.mode": "blur"}, "capture.redact.mode: must be one of mask, hash"),
        ({"capture.redact.patterns": {"ticket": "TKT-(["}},
         "capture.redact.patterns.ticket: is not a valid regular expression"),
        ({"capture.redact.patterns": {"anything": "x*"}},
         "capture.redact.patterns.anything: matches the empty string"),
        ({"capture.redact.patterns": {"Bad-Name": "x"}}, "capture.redact.patterns.Bad-Name: name"),
        ({"capture.redact.patterns": {"email": "x"}}, "capture.redact.patterns.email: name"),
        ({"capture.redact.patterns": ["x"]}, "capture.redact.patterns: must be a table"),
        ({"capture.redact.colour": "x"}, "capture.redact.colour: unknown key"),
    ],
)  # fmt: skip
def test_bad_redaction_settings_stop_start_up_naming_the_key(
    overrides: dict[str, Any], message: str
) -> None:
    """A bad kind, mode or pattern is one line naming the setting (and the pattern)."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env={}, overrides=overrides)
    assert str(caught.value).startswith(message)


def test_hash_key_comes_from_the_setting_or_the_token_secret() -> None:
    """capture.redact.key wins; else the key is derived from feedback.token_secret."""
    text = "a@b.io"

    def hashed(key: str, secret: str) -> str:
        redactor = redactor_for(RedactSettings(("email",), "hash", key=key), secret)
        assert redactor is not None
        return redactor.text(text, {})

    assert hashed("k", "s1") == hashed("k", "s2")
    assert hashed("", "s1") != hashed("", "s2")
    assert hashed("", "s1") == hashed("", "s1")
    assert redactor_for(RedactSettings(kinds=()), "s") is None


def test_the_config_and_the_detectors_name_the_same_kinds() -> None:
    """Every kind the settings accept has a detector, and no other."""
    assert set(BUILTIN_KINDS) == set(REDACT_KINDS)


def test_check_config_masks_the_hash_key() -> None:
    """capture.redact.key is a secret: check-config shows *** (patterns and kinds as set)."""
    from proxy.config import masked

    settings = load_settings(env={}, overrides={"capture.redact.key": "k", "capture.redact.mode":
                                                 "hash"})  # fmt: skip
    shown = masked(settings)["capture"]["redact"]
    assert shown == {"kinds": ["secret"], "mode": "hash", "patterns": {}, "key": "***"}


def test_values_right_after_a_json_escape_in_a_raw_body_are_found() -> None:
    """A body stored as JSON text (cut at capture.max_bytes) writes a newline as \\n: a key,
    card or address right after it is still found."""
    raw = (
        '{"messages": [{"content": "hi\\nsk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z'
        '\\n4111 1111 1111 1111\\t10.0.0.1"}]'
    )
    out, counts = redacted(raw)
    assert counts == {"secret": 1, "credit_card": 1, "ip": 1}
    assert "sk-proj" not in out
    assert "\\n[REDACTED:secret]\\n[REDACTED:credit_card]\\t[REDACTED:ip]" in out
