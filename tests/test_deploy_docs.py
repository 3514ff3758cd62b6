"""The deployment examples (docs/examples) are valid and agree with the code and the docs.

Every ``FEEDBACK_PROXY_*`` variable they set must be accepted by ``load_settings`` (the same
mapping the proxy applies at start-up, so a misspelt section or key fails here, not in a pod),
docs/sidecar.md must show the example files verbatim, and the shutdown budgets must cover
``proxy.drain_seconds``. PyYAML is not a dependency: the YAML-structure tests run only where it
is installed; the rest reads the files as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from proxy.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
COMPOSE = EXAMPLES / "docker-compose.yml"
K8S = EXAMPLES / "k8s-sidecar.yaml"
CONFIG = ROOT / "config" / "feedback-proxy.toml"
VAR = re.compile(r"\bFEEDBACK_PROXY_[A-Z0-9_]+")
PLACEHOLDER = "set-by-the-deployment"  # for ${...} interpolations and secretKeyRef values
# Values from a Secret that must have a shape to pass validation.
SECRET_SHAPES = {"FEEDBACK_PROXY_REDIS__URL": "redis://redis.example:6379/0"}


def compose_env() -> dict[str, str]:
    """``KEY: value`` lines of the compose file whose key is a FEEDBACK_PROXY_ variable."""
    pattern = re.compile(r"^\s+(FEEDBACK_PROXY_[A-Z0-9_]+):\s*(.*?)\s*(?:#.*)?$")
    found = (pattern.match(line) for line in COMPOSE.read_text().splitlines())
    return {m[1]: _plain(m[2]) for m in found if m}


def k8s_env() -> dict[str, str]:
    """``- name: FEEDBACK_PROXY_...`` entries of the pod spec with their ``value``."""
    env: dict[str, str] = {}
    lines = K8S.read_text().splitlines()
    for i, line in enumerate(lines):
        named = re.match(r"^\s+- name: (FEEDBACK_PROXY_[A-Z0-9_]+)\s*(?:#.*)?$", line)
        if named:
            value = re.match(r"^\s+value:\s*(.*?)\s*(?:#.*)?$", lines[i + 1])
            env[named[1]] = _plain(value[1]) if value else _secret(named[1])  # valueFrom
    return env


def _secret(name: str) -> str:
    return SECRET_SHAPES.get(name, PLACEHOLDER)


def _plain(value: str) -> str:
    """A YAML scalar as text: quotes removed, compose interpolations replaced."""
    value = value.strip().strip('"').strip("'")
    return re.sub(r"\$\{[^}]*\}", PLACEHOLDER, value)


@pytest.mark.parametrize(("path", "env"), [(COMPOSE, compose_env), (K8S, k8s_env)])
def test_every_variable_in_an_example_is_read(path: Path, env: Any) -> None:
    """The line parser above sees every FEEDBACK_PROXY_ variable the file mentions."""
    assert set(VAR.findall(path.read_text())) == set(env())


@pytest.mark.parametrize("env", [compose_env, k8s_env])
def test_the_example_settings_load(env: Any) -> None:
    """The baked-in config plus the example's variables is a valid configuration: each
    variable names a real key, and each value has the key's type and range."""
    variables = env()
    assert variables
    load_settings(CONFIG, env=variables)


def test_a_misspelt_variable_would_be_caught() -> None:
    """The check above has teeth: an unknown key is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"proxy\.drain_secs"):
        load_settings(CONFIG, env={"FEEDBACK_PROXY_PROXY__DRAIN_SECS": "20"})


def test_variables_named_in_the_deploy_docs_are_real_keys() -> None:
    """A variable mentioned in prose must name a key: a type error is fine here (the prose
    gives no value), an unknown key is not."""
    text = "".join((ROOT / "docs" / name).read_text() for name in ("sidecar.md", "deploy.md"))
    assert [name for name in sorted(set(VAR.findall(text))) if _unknown(name)] == []


def _unknown(name: str) -> bool:
    try:
        load_settings(CONFIG, env={name: "1"})
    except ConfigError as error:
        return "unknown" in str(error)
    return False


def fenced_yaml(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, flags=re.DOTALL)


def test_sidecar_doc_shows_the_example_files_verbatim() -> None:
    """docs/sidecar.md embeds both files; a change to one without the other fails."""
    blocks = fenced_yaml((ROOT / "docs" / "sidecar.md").read_text())
    assert blocks == [COMPOSE.read_text(), K8S.read_text()]


@pytest.mark.parametrize("path", [COMPOSE, K8S])
def test_examples_are_plain_yaml_text(path: Path) -> None:
    """What can be checked without a YAML parser: no tabs, two-space indentation."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        assert "\t" not in line, f"{path.name}:{number}: tab"
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, f"{path.name}:{number}: odd indentation"


def test_compose_grace_period_covers_the_drain() -> None:
    """stop_grace_period exceeds the worst shutdown: 5 s + 2 x proxy.drain_seconds."""
    drain = float(compose_env()["FEEDBACK_PROXY_PROXY__DRAIN_SECONDS"])
    grace = re.search(r"stop_grace_period:\s*(\d+)s", COMPOSE.read_text())
    assert grace is not None
    assert int(grace[1]) >= 5 + 2 * drain


def test_k8s_grace_period_covers_the_app_and_the_proxy() -> None:
    """terminationGracePeriodSeconds >= the app's drain (taken as drain_seconds) + the
    proxy's worst shutdown (5 s + 2 x drain_seconds)."""
    drain = float(k8s_env()["FEEDBACK_PROXY_PROXY__DRAIN_SECONDS"])
    grace = re.search(r"terminationGracePeriodSeconds:\s*(\d+)", K8S.read_text())
    assert grace is not None
    assert int(grace[1]) >= 3 * drain + 5


# --------------------------------------------------------------------- with PyYAML only


def load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text())


def test_compose_structure() -> None:
    """app -> proxy -> redis, each waiting for the next one's health check; Redis 7 with AOF
    and noeviction; the same variables the line parser found."""
    services = load_yaml(COMPOSE)["services"]
    assert services["app"]["depends_on"]["proxy"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert {"test", "interval"} <= set(services["proxy"]["healthcheck"])
    assert {"test", "interval"} <= set(services["redis"]["healthcheck"])
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert _flag(redis["command"], "--appendonly") == "yes"
    assert _flag(redis["command"], "--maxmemory-policy") == "noeviction"
    env = {k: str(v) for k, v in services["proxy"]["environment"].items()}
    assert {k: _plain(v) for k, v in env.items()} == compose_env()


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_k8s_structure() -> None:
    """The proxy is a native sidecar with /healthz and /readyz probes on the proxy port, runs
    non-root, and keeps the admin listener on loopback (or behind a token)."""
    pod = load_yaml(K8S)["spec"]["template"]["spec"]
    [proxy] = pod["initContainers"]
    assert proxy["restartPolicy"] == "Always"
    assert proxy["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert proxy["securityContext"]["runAsUser"] != 0
    env = _pod_env(proxy["env"])
    assert env == k8s_env()
    admin_host = env.get("FEEDBACK_PROXY_ADMIN__HOST", "127.0.0.1")
    assert admin_host.startswith("127.") or "FEEDBACK_PROXY_ADMIN__TOKEN" in env
    assert [c["name"] for c in pod["containers"]] == ["app"]


def _pod_env(entries: list[Mapping[str, Any]]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) if "value" in e else _secret(e["name"]) for e in entries}
