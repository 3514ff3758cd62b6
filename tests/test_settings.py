"""Settings: documented defaults, the documented config file, overrides, and one-line errors."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from proxy.config import (
    ConfigError,
    ReviewRule,
    Settings,
    UpstreamSettings,
    load_settings,
    masked,
)

CONFIG_FILE = Path(__file__).resolve().parent.parent / "config" / "feedback-proxy.toml"


@pytest.fixture(autouse=True)
def _away_from_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty cwd so the repo's config/feedback-proxy.toml is never picked up."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "fp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# Settings sections that live in a nested TOML table, by field name.
NESTED_TABLES = {"otlp": ("export", "otlp")}


def doc_table(doc: dict[str, Any], name: str) -> Any:
    """The TOML (or masked) table of the settings section ``name``."""
    for part in NESTED_TABLES.get(name, (name,)):
        doc = doc[part]
    return doc


def section_names() -> list[str]:
    """The names of the plain-table sections of Settings (proxy, admin, redis, ...)."""
    defaults = Settings()
    return [
        f.name for f in dataclasses.fields(Settings)
        if dataclasses.is_dataclass(getattr(defaults, f.name))
    ]  # fmt: skip


# ----------------------------------------------------------------------------- defaults


def test_defaults_without_file_or_env() -> None:
    """With no file and no environment the proxy runs with the documented defaults."""
    s = load_settings(env={})
    assert s == Settings()
    assert (s.proxy.host, s.proxy.port, s.proxy.workers) == ("0.0.0.0", 8080, 1)
    assert s.proxy.default_upstream == "openai"
    assert s.proxy.keys == ()
    assert s.proxy.max_body_bytes == 10485760
    assert s.proxy.drain_seconds == 30
    assert (s.admin.host, s.admin.port, s.admin.token) == ("127.0.0.1", 8081, "")
    assert set(s.upstreams) == {"openai", "anthropic"}
    assert s.upstreams["openai"].base_url == "https://api.openai.com"
    assert s.upstreams["anthropic"].base_url == "https://api.anthropic.com"
    assert s.upstreams["openai"].connect_timeout == 10
    assert s.upstreams["openai"].read_timeout == 600
    assert s.redis.url == ""
    assert s.redis.data_dir == ".feedback-proxy"
    assert (s.redis.key_prefix, s.redis.retention_days) == ("fp", 30)
    assert s.capture.bodies is True
    assert s.capture.max_bytes == 262144
    assert s.feedback.on_invalid == "reject"
    assert s.feedback.categories == ("incorrect", "incomplete", "off-topic", "unsafe", "other")
    assert s.feedback.reasons == (
        "wrong_policy", "hallucination", "missing_context", "formatting", "too_verbose", "other",
    )  # fmt: skip
    assert s.feedback.token_secret == ""
    assert (s.log.level, s.log.format) == ("info", "auto")
    assert s.review_rules == (
        ReviewRule(dataset="review", when={"user_feedback": "negative"}),
        ReviewRule(dataset="low-ratings", when={"user_feedback_rating": {"lte": 2}}),
    )


def test_default_config_file_is_used_from_cwd(tmp_path: Path) -> None:
    """A config/feedback-proxy.toml in the working directory is read without --config."""
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "[proxy]\nport = 9111\n", "feedback-proxy.toml")
    assert load_settings(env={}).proxy.port == 9111


# ----------------------------------------------------------------------------- documented file


def _same_value(documented: Any, default: Any) -> bool:
    if dataclasses.is_dataclass(default):  # a sub-table such as [capture.redact]
        names = {f.name for f in dataclasses.fields(default)}
        return (
            isinstance(documented, dict)
            and set(documented) == names
            and all(_same_value(documented[n], getattr(default, n)) for n in names)
        )
    if isinstance(default, tuple):
        return isinstance(documented, list) and tuple(documented) == default
    if isinstance(default, float):
        return (
            isinstance(documented, int | float)
            and not isinstance(documented, bool)
            and (documented == default)
        )
    return type(documented) is type(default) and documented == default


def test_config_file_lists_every_key_with_its_default() -> None:
    """config/feedback-proxy.toml shows every setting, each with exactly the built-in default."""
    doc = tomllib.loads(CONFIG_FILE.read_text(encoding="utf-8"))
    defaults = Settings()
    expected_tables = {NESTED_TABLES.get(n, (n,))[0] for n in section_names()}
    assert set(doc) == expected_tables | {"upstreams", "review"}
    for name in section_names():
        section = getattr(defaults, name)
        names = {f.name for f in dataclasses.fields(section)}
        table = doc_table(doc, name)
        assert set(table) == names, f"[{name}] keys differ from {type(section).__name__}"
        for key in names:
            assert _same_value(table[key], getattr(section, key)), f"{name}.{key}"
    assert set(doc["upstreams"]) == {"openai", "anthropic"}
    for upstream, default in defaults.upstreams.items():
        table = doc["upstreams"][upstream]
        names = {f.name for f in dataclasses.fields(UpstreamSettings)}
        assert set(table) == names, f"[upstreams.{upstream}] keys differ"
        for key in names:
            assert _same_value(table[key], getattr(default, key)), f"upstreams.{upstream}.{key}"
    assert doc["review"]["rules"] == [
        {"dataset": r.dataset, "when": dict(r.when)} for r in defaults.review_rules
    ]


def test_loading_the_documented_file_gives_the_defaults() -> None:
    """Running with the shipped config file behaves exactly like running with no file."""
    assert load_settings(CONFIG_FILE, env={}) == Settings()


_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_TABLE_LINE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")


def _undocumented_keys(text: str) -> list[str]:
    """Key lines without a comment: none at the line's end, none directly above it.

    A key repeated in a later ``[upstreams.<name>]`` or ``[[review.rules]]`` counts as
    documented once an earlier table of that kind documented it, and a key named in the comment
    block just above its table header (``{base_url}``, `` `dataset` ``) counts as documented.
    """
    missing: list[str] = []
    documented: set[tuple[str, str]] = set()
    header_comments = ""
    comment_block: list[str] = []
    table = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment_block.append(stripped)
            continue
        if table_match := _TABLE_LINE.match(line):
            table = table_match.group(1)
            header_comments = " ".join(comment_block)
        elif key_match := _KEY_LINE.match(line):
            key = key_match.group(1)
            kind = "upstreams" if table.startswith("upstreams.") else table
            ok = (
                bool(comment_block)
                or re.search(r"\s#", line.split("=", 1)[1]) is not None
                or re.search(rf"\b{re.escape(key)}\b", header_comments) is not None
                or (kind, key) in documented
            )
            if ok:
                documented.add((kind, key))
            else:
                missing.append(f"{table}.{key}")
        if stripped:
            comment_block = []
    return missing


def test_comment_checker_finds_an_uncommented_key() -> None:
    """(self-check) the comment rule below flags a key without any comment."""
    text = "# head\n[a]\nx = 1  # doc\n# above\ny = 2\nz = 3\n[[r]]\nq = 1  # d\n[[r]]\nq = 2\n"
    assert _undocumented_keys(text) == ["a.z"]


def test_every_key_in_config_file_has_a_comment() -> None:
    """Every key in the documented config file carries a one-line comment saying what it does."""
    assert _undocumented_keys(CONFIG_FILE.read_text(encoding="utf-8")) == []


# ----------------------------------------------------------------------------- loading


def test_file_values_load(tmp_path: Path) -> None:
    """Values written in the TOML file are what the proxy uses."""
    path = write(
        tmp_path,
        """
        [proxy]
        port = 9001
        keys = ["k1", "k2"]
        drain_seconds = 2.5
        [upstreams.openai]
        base_url = "http://127.0.0.1:4000"
        read_timeout = 30
        [upstreams.local]
        base_url = "http://localhost:11434"
        [redis]
        url = "redis://localhost:6379/2"
        [capture]
        bodies = false
        [feedback]
        on_invalid = "warn"
        [[review.rules]]
        dataset = "bad"
        when = { user_feedback = "negative" }
        """.replace("\n        ", "\n"),
    )
    s = load_settings(path, env={})
    assert s.proxy.port == 9001
    assert s.proxy.keys == ("k1", "k2")
    assert s.proxy.drain_seconds == 2.5
    assert s.upstreams["openai"] == UpstreamSettings("http://127.0.0.1:4000", 10.0, 30.0)
    assert s.upstreams["anthropic"].base_url == "https://api.anthropic.com"
    assert s.upstreams["local"] == UpstreamSettings(base_url="http://localhost:11434")
    assert s.redis.url == "redis://localhost:6379/2"
    assert s.capture.bodies is False
    assert s.feedback.on_invalid == "warn"
    assert s.review_rules == (ReviewRule("bad", {"user_feedback": "negative"}),)


def test_config_path_from_environment(tmp_path: Path) -> None:
    """FEEDBACK_PROXY_CONFIG names the file to read."""
    path = write(tmp_path, "[proxy]\nport = 9002\n", "elsewhere.toml")
    assert load_settings(env={"FEEDBACK_PROXY_CONFIG": str(path)}).proxy.port == 9002


def test_env_overrides_scalars_and_upstreams() -> None:
    """FEEDBACK_PROXY_<SECTION>__<KEY> sets any key, upstreams included."""
    s = load_settings(
        env={
            "FEEDBACK_PROXY_PROXY__PORT": "9000",
            "FEEDBACK_PROXY_REDIS__URL": "redis://redis:6379/0",
            "FEEDBACK_PROXY_UPSTREAMS__OPENAI__BASE_URL": "https://gw.example/openai",
            "FEEDBACK_PROXY_UPSTREAMS__OPENAI__CONNECT_TIMEOUT": "2.5",
            "FEEDBACK_PROXY_PROXY__DRAIN_SECONDS": "3",
            "UNRELATED": "x",
            "FEEDBACK_PROXY_NO_DOUBLE_UNDERSCORE": "ignored",
        }
    )
    assert s.proxy.port == 9000
    assert s.redis.url == "redis://redis:6379/0"
    assert s.upstreams["openai"].base_url == "https://gw.example/openai"
    assert s.upstreams["openai"].connect_timeout == 2.5
    assert s.upstreams["openai"].read_timeout == 600
    assert s.proxy.drain_seconds == 3.0


def test_env_adds_a_new_upstream() -> None:
    """A new upstream can be declared from the environment alone (and made the default)."""
    s = load_settings(
        env={
            "FEEDBACK_PROXY_UPSTREAMS__OLLAMA__BASE_URL": "http://localhost:11434",
            "FEEDBACK_PROXY_UPSTREAMS__OLLAMA__READ_TIMEOUT": "60",
            "FEEDBACK_PROXY_PROXY__DEFAULT_UPSTREAM": "ollama",
        }
    )
    assert s.upstreams["ollama"] == UpstreamSettings("http://localhost:11434", 10.0, 60.0)
    assert {"openai", "anthropic"} <= set(s.upstreams)
    assert s.proxy.default_upstream == "ollama"


@pytest.mark.parametrize("value", ["a,b", " a , b ,", '["a","b"]', '[ "a", "b" ]'])
def test_env_list_values(value: str) -> None:
    """A list can be given as comma-separated text or as a TOML array."""
    assert load_settings(env={"FEEDBACK_PROXY_PROXY__KEYS": value}).proxy.keys == ("a", "b")


def test_env_empty_list() -> None:
    """An empty environment value clears a list."""
    assert load_settings(env={"FEEDBACK_PROXY_PROXY__KEYS": ""}).proxy.keys == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("YES", True), ("on", True),
     ("false", False), ("0", False), ("no", False), ("Off", False)],
)  # fmt: skip
def test_env_booleans(text: str, expected: bool) -> None:
    """Booleans from the environment accept true/false, 1/0, yes/no, on/off."""
    assert load_settings(env={"FEEDBACK_PROXY_CAPTURE__BODIES": text}).capture.bodies is expected


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    """A CLI flag beats the environment, which beats the file, which beats the default."""
    path = write(tmp_path, "[proxy]\nport = 1001\nworkers = 2\nhost = '127.0.0.1'\n")
    env = {"FEEDBACK_PROXY_PROXY__PORT": "1002", "FEEDBACK_PROXY_PROXY__WORKERS": "3"}
    s = load_settings(path, env=env, overrides={"proxy.port": 1003})
    assert s.proxy.port == 1003  # override > env
    assert s.proxy.workers == 3  # env > file
    assert s.proxy.host == "127.0.0.1"  # file > default
    assert s.proxy.max_body_bytes == 10485760  # default
    assert load_settings(path, env=env).proxy.port == 1002
    assert load_settings(path, env={}).proxy.port == 1001


def test_override_of_upstream_base_url(tmp_path: Path) -> None:
    """A dotted override (what --upstream uses) replaces an upstream's base_url."""
    s = load_settings(
        env={"FEEDBACK_PROXY_UPSTREAMS__OPENAI__BASE_URL": "http://env.example"},
        overrides={"upstreams.openai.base_url": "http://flag.example"},
    )
    assert s.upstreams["openai"].base_url == "http://flag.example"


# ----------------------------------------------------------------------------- bad values

BAD_FILES = [
    ("[proxy]\nport = '8080'\n", "proxy.port"),
    ("[proxy]\nport = 70000\n", "proxy.port"),
    ("[proxy]\nport = -1\n", "proxy.port"),
    ("[admin]\nport = 65536\n", "admin.port"),
    ("[proxy]\nworkers = 0\n", "proxy.workers"),
    ("[proxy]\nkeys = 'abc'\n", "proxy.keys"),
    ("[capture]\nbodies = 'yes'\n", "capture.bodies"),
    ("[proxy]\ndrain_seconds = true\n", "proxy.drain_seconds"),
    ("[proxy]\nprot = 8080\n", "proxy.prot"),
    ("[upstreams.openai]\nbase_ur = 'http://x'\n", "upstreams.openai.base_ur"),
    ("[proxi]\nport = 8080\n", "proxi"),
    ("top_level = 1\n", "top_level"),
    ("[upstreams.openai]\nbase_url = 'ftp://example.com'\n", "upstreams.openai.base_url"),
    ("[upstreams.openai]\nbase_url = 'api.openai.com'\n", "upstreams.openai.base_url"),
    ("[upstreams.openai]\nbase_url = 'https://x.example/?a=1'\n", "upstreams.openai.base_url"),
    ("[upstreams.openai]\nbase_url = ''\n", "upstreams.openai.base_url"),
    ("[upstreams.local]\nread_timeout = 5\n", "upstreams.local.base_url"),
    ("[upstreams.openai]\nread_timeout = 0\n", "upstreams.openai.read_timeout"),
    ("[upstreams.v1]\nbase_url = 'http://x.example'\n", "upstreams.v1"),
    ("[upstreams.healthz]\nbase_url = 'http://x.example'\n", "upstreams.healthz"),
    ("[upstreams.'My Gateway']\nbase_url = 'http://x.example'\n", "upstreams.My Gateway"),
    ("[proxy]\ndefault_upstream = 'mistral'\n", "proxy.default_upstream"),
    ("[feedback]\non_invalid = 'ignore'\n", "feedback.on_invalid"),
    ("[feedback]\ncategories = ['a', 1]\n", "feedback.categories"),
    ("[log]\nlevel = 'verbose'\n", "log.level"),
    ("[redis]\nurl = 'http://localhost:6379'\n", "redis.url"),
    ("[redis]\nurl = 'localhost:6379'\n", "redis.url"),
    ("[redis]\nkey_prefix = 'has space'\n", "redis.key_prefix"),
    ("[redis]\nretention_days = 0\n", "redis.retention_days"),
    ("[[review.rules]]\ndataset = 'x'\n", "review.rules[0]"),
    ("[[review.rules]]\ndataset = '}x'\nwhen = {user_feedback = 'negative'}\n",
     "review.rules[0].dataset"),
    ("[proxy\nport = 1\n", "config"),
    ("port = = 1\n", "config"),
]


def assert_one_line_naming(exc: ConfigError, key: str) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert "\r" not in text, text
    assert text.startswith(f"{key}: "), text
    assert len(text) > len(key) + 2, text


@pytest.mark.parametrize(("text", "key"), BAD_FILES)
def test_bad_file_value_is_one_line_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Any bad value in the file stops start-up with one line that names the key."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert_one_line_naming(info.value, key)


BAD_ENV = [
    ({"FEEDBACK_PROXY_PROXY__WORKERS": "abc"}, "proxy.workers"),
    ({"FEEDBACK_PROXY_PROXY__PORT": "8080.5"}, "proxy.port"),
    ({"FEEDBACK_PROXY_PROXY__PORT": "70000"}, "proxy.port"),
    ({"FEEDBACK_PROXY_PROXY__DRAIN_SECONDS": "soon"}, "proxy.drain_seconds"),
    ({"FEEDBACK_PROXY_CAPTURE__BODIES": "maybe"}, "capture.bodies"),
    ({"FEEDBACK_PROXY_PROXY__KEYS": '["a", 1]'}, "proxy.keys"),
    ({"FEEDBACK_PROXY_PROXY__PROT": "1"}, "proxy.prot"),
    ({"FEEDBACK_PROXY_PROXI__PORT": "1"}, "proxi"),
    ({"FEEDBACK_PROXY_UPSTREAMS__V1__BASE_URL": "http://x.example"}, "upstreams.v1"),
    ({"FEEDBACK_PROXY_UPSTREAMS__OPENAI__BASE_URL": "not a url"}, "upstreams.openai.base_url"),
    ({"FEEDBACK_PROXY_PROXY__DEFAULT_UPSTREAM": "nope"}, "proxy.default_upstream"),
    ({"FEEDBACK_PROXY_FEEDBACK__ON_INVALID": "drop"}, "feedback.on_invalid"),
    ({"FEEDBACK_PROXY_REDIS__URL": "memcached://localhost"}, "redis.url"),
]


@pytest.mark.parametrize(("env", "key"), BAD_ENV)
def test_bad_env_value_is_one_line_naming_the_key(env: dict[str, str], key: str) -> None:
    """A bad FEEDBACK_PROXY_* variable stops start-up with one line that names the key."""
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert_one_line_naming(info.value, key)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"proxy.port": 70000}, "proxy.port"), ({"proxy.workers": 0}, "proxy.workers"),
     ({"upstreams.openai.base_url": "openai"}, "upstreams.openai.base_url"),
     ({"redis.url": "mysql://db"}, "redis.url")],
)  # fmt: skip
def test_bad_override_is_one_line_naming_the_key(overrides: dict[str, Any], key: str) -> None:
    """A bad CLI flag value stops start-up with one line that names the key."""
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, overrides=overrides)
    assert_one_line_naming(info.value, key)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "proxy.internal", "::"])
def test_public_admin_host_needs_a_token(host: str) -> None:
    """Exposing the admin API beyond loopback without admin.token is refused."""
    with pytest.raises(ConfigError) as info:
        load_settings(env={"FEEDBACK_PROXY_ADMIN__HOST": host})
    assert_one_line_naming(info.value, "admin.token")
    assert "admin.host" in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_admin_host_needs_no_token(host: str) -> None:
    """On loopback the admin API may run without a token; elsewhere a token allows it."""
    assert load_settings(env={"FEEDBACK_PROXY_ADMIN__HOST": host}).admin.host == host
    env = {"FEEDBACK_PROXY_ADMIN__HOST": "0.0.0.0", "FEEDBACK_PROXY_ADMIN__TOKEN": "t"}
    assert load_settings(env=env).admin.token == "t"


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    """A --config path that does not exist is reported in one line with the path."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, env={})
    assert_one_line_naming(info.value, "config")
    assert str(missing) in str(info.value)
    with pytest.raises(ConfigError):
        load_settings(env={"FEEDBACK_PROXY_CONFIG": str(missing)})


def test_invalid_toml_is_one_line_with_position(tmp_path: Path) -> None:
    """A file that is not TOML is reported in one line saying where it breaks."""
    path = write(tmp_path, "[proxy]\nport = 8080\nhost = \n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert_one_line_naming(info.value, "config")
    assert "line 3" in str(info.value)


# Bugs: bad input that escapes as a traceback instead of a one-line ConfigError.


def test_env_list_with_broken_array_is_one_line() -> None:
    """A malformed list in the environment (FEEDBACK_PROXY_PROXY__KEYS='["a",') is one line."""
    with pytest.raises(ConfigError) as info:
        load_settings(env={"FEEDBACK_PROXY_PROXY__KEYS": '["a",'})
    assert_one_line_naming(info.value, "proxy.keys")


def test_config_path_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    """--config pointing at a directory is reported in one line, not a traceback."""
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, env={})
    assert_one_line_naming(info.value, "config")


def test_config_file_not_utf8_is_one_line(tmp_path: Path) -> None:
    """A config file that is not UTF-8 text is reported in one line, not a traceback."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[proxy]\nhost = '\xe9'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert_one_line_naming(info.value, "config")


@pytest.mark.parametrize(
    ("env", "key"),
    [({"FEEDBACK_PROXY_UPSTREAMS__OPENAI__BASE_URL": "http://[::1"}, "upstreams.openai.base_url"),
     ({"FEEDBACK_PROXY_REDIS__URL": "redis://[::1:6379"}, "redis.url")],
)  # fmt: skip
def test_malformed_url_is_one_line(env: dict[str, str], key: str) -> None:
    """A URL that cannot be parsed is reported in one line naming the key."""
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert_one_line_naming(info.value, key)


@pytest.mark.parametrize("url", ["http://localhost:99999", "http://localhost:abc"])
def test_base_url_with_bad_port_is_refused(url: str) -> None:
    """An upstream base_url with an impossible port stops start-up instead of failing calls."""
    with pytest.raises(ConfigError) as info:
        load_settings(env={"FEEDBACK_PROXY_UPSTREAMS__OPENAI__BASE_URL": url})
    assert_one_line_naming(info.value, "upstreams.openai.base_url")


# ----------------------------------------------------------------------------- masked


def test_masked_hides_secrets_and_shows_the_rest() -> None:
    """check-config output hides keys, tokens and the Redis password, and shows everything else."""
    s = load_settings(
        env={
            "FEEDBACK_PROXY_PROXY__KEYS": "pk-one-secret,pk-two-secret",
            "FEEDBACK_PROXY_ADMIN__TOKEN": "admin-secret-token",
            "FEEDBACK_PROXY_FEEDBACK__TOKEN_SECRET": "hmac-secret-value",
            "FEEDBACK_PROXY_REDIS__URL": "redis://user:redis-secret-pw@cache.example:6380/3",
            "FEEDBACK_PROXY_PROXY__PORT": "9005",
            "FEEDBACK_PROXY_UPSTREAMS__LOCAL__BASE_URL": "http://localhost:11434",
        }
    )
    m = masked(s)
    text = repr(m)
    for secret in ("pk-one-secret", "pk-two-secret", "admin-secret-token", "hmac-secret-value",
                   "redis-secret-pw"):  # fmt: skip
        assert secret not in text
    assert m["proxy"]["keys"] == ["***", "***"]
    assert m["admin"]["token"] == "***"
    assert m["feedback"]["token_secret"] == "***"
    assert m["redis"]["url"] == "redis://user:***@cache.example:6380/3"
    # everything else is shown as is
    assert m["proxy"]["port"] == 9005
    assert m["admin"]["host"] == "127.0.0.1"
    assert m["redis"]["data_dir"] == ".feedback-proxy"
    assert m["upstreams"]["local"]["base_url"] == "http://localhost:11434"
    assert m["upstreams"]["openai"]["base_url"] == "https://api.openai.com"
    assert m["feedback"]["categories"] == list(s.feedback.categories)
    assert m["review"]["rules"][0]["dataset"] == "review"
    for name in section_names():
        section = getattr(s, name)
        assert set(doc_table(m, name)) == {f.name for f in dataclasses.fields(section)}


def test_masked_shows_empty_secrets_and_plain_redis_url() -> None:
    """Unset secrets show as empty (so you see they are unset); a URL without password is intact."""
    s = load_settings(env={"FEEDBACK_PROXY_REDIS__URL": "redis://cache.example:6379/0"})
    m = masked(s)
    assert m["proxy"]["keys"] == []
    assert m["admin"]["token"] == ""
    assert m["feedback"]["token_secret"] == ""
    assert m["redis"]["url"] == "redis://cache.example:6379/0"
    assert masked(load_settings(env={}))["redis"]["url"] == ""


def test_masked_redis_password_only_url() -> None:
    """A Redis URL with a password but no user name also has the password hidden."""
    s = load_settings(env={"FEEDBACK_PROXY_REDIS__URL": "rediss://:p%40ss-secret@h.example:6380"})
    assert masked(s)["redis"]["url"] == "rediss://:***@h.example:6380"


def test_masked_hides_password_in_redis_url_query() -> None:
    """A Redis password given as ?password=... is hidden too."""
    s = load_settings(env={"FEEDBACK_PROXY_REDIS__URL": "redis://h.example/0?password=q-secret"})
    assert "q-secret" not in masked(s)["redis"]["url"]
