from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_config, parse_config
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_config_example_loads_with_no_environment() -> None:
    cfg = load_config(ROOT / "config.example.yaml", env={})
    assert cfg.sources.stripe is not None
    assert cfg.store.url.startswith("sqlite://")
    assert [e.id for e in cfg.endpoints] == ["we_billing"]
    assert cfg.admin.api_keys  # a development key, so the admin API is usable locally


def test_config_env_var_replaces_and_default_falls_back() -> None:
    text = 'sources: {stripe: {signing_secrets: ["${A}", "${B:-whsec_fallback}"]}}'
    cfg = parse_config(text, env={"A": "whsec_from_env"})
    assert cfg.sources.stripe is not None
    got = [s.get_secret_value() for s in cfg.sources.stripe.signing_secrets]
    assert got == ["whsec_from_env", "whsec_fallback"]


def test_config_unset_env_var_names_the_key_path() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config('sources: {stripe: {signing_secrets: ["${STRIPE_WEBHOOK_SECRET}"]}}', env={})
    assert exc.value.key == "sources.stripe.signing_secrets[0]"
    assert "STRIPE_WEBHOOK_SECRET" in str(exc.value)


def test_config_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config("server: {port: 8080, prot: 1}", env={})
    assert exc.value.key == "server.prot"
    assert "unknown key" in str(exc.value)


def test_config_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config("delivery: {schedule_s: [5, soon]}", env={})
    assert exc.value.key == "delivery.schedule_s[1]"


def test_config_unknown_event_type_in_endpoint_names_the_key() -> None:
    text = """
endpoints:
  - id: we_a
    url: "https://a.example/h"
    secret: whsec_abcdefghijklmnop
    enabled_events: [invoice.payed]
"""
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env={})
    assert exc.value.key == "endpoints[0].enabled_events"
    assert "invoice.payed" in str(exc.value)


def test_config_endpoint_without_secret_is_refused_unless_blocklet() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(
            "endpoints: [{id: we_a, url: 'https://a.example/h', enabled_events: ['*']}]", env={}
        )
    assert "secret is required" in str(exc.value)
    cfg = parse_config(
        "endpoints: [{id: we_a, url: 'https://a.example/h', enabled_events: ['*'],"
        " signature: blocklet}]",
        env={},
    )
    assert cfg.endpoints[0].signature == "blocklet"


def test_config_repr_and_errors_never_show_secrets() -> None:
    secret = "whsec_very_secret_value_123456"
    cfg = parse_config(
        f'sources: {{stripe: {{signing_secrets: ["{secret}"], api_key: "sk_test_hidden_42"}}}}\n'
        f'admin: {{api_keys: ["admin-hidden-key"]}}',
        env={},
    )
    text = repr(cfg) + str(cfg) + cfg.model_dump_json()
    for hidden in (secret, "sk_test_hidden_42", "admin-hidden-key"):
        assert hidden not in text


def test_config_is_frozen() -> None:
    cfg = parse_config("", env={})
    with pytest.raises(ValueError):
        cfg.server.port = 1  # type: ignore[misc]


def test_config_not_yaml_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("server: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})


def test_config_standard_endpoint_secret_must_be_whsec_base64() -> None:
    text = """
endpoints:
  - {id: we_a, url: "https://a.example/h", secret: "not-a-whsec-secret", enabled_events: ["*"]}
"""
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env={})
    assert "whsec_" in str(exc.value) and "not-a-whsec-secret" not in str(exc.value)
    stripe_scheme = text.replace(
        'enabled_events: ["*"]}', 'enabled_events: ["*"], signature: stripe}'
    )
    assert parse_config(stripe_scheme, env={}).endpoints[0].signature == "stripe"


def test_config_server_http_limits_have_defaults_and_are_checked() -> None:
    server = parse_config("{}", env={}).server
    assert (server.max_request_line_bytes, server.max_header_field_bytes) == (8190, 8190)
    assert (server.max_headers, server.keepalive_timeout_s) == (128, 75.0)
    for key, value in (
        ("max_headers", 0),
        ("max_header_field_bytes", 10),
        ("keepalive_timeout_s", 0),
    ):
        with pytest.raises(ConfigError) as exc:
            parse_config(f"server: {{{key}: {value}}}", env={})
        assert exc.value.key == f"server.{key}"
