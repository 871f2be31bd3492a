"""settings.py refuses a missing or malformed setting with a message that names it."""

from __future__ import annotations

import json

import pytest

from sanscouture.settings import Settings
from sanscouture.settings import SettingsError

TENANT = "11111111-2222-3333-4444-555555555555"


def valid_env(**overrides: str) -> dict[str, str]:
    env = {
        "BROKER_ISSUER": "https://broker.example/",
        "BROKER_CLIENTS": json.dumps(
            [
                {
                    "client_id": "portail",
                    "client_secret": "sha256:" + "a" * 64,
                    "redirect_uris": ["https://sn.example/callback"],
                },
                {
                    "client_id": "jwt-app",
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks_uri": "https://sn2.example/jwks",
                    "redirect_uris": ["https://sn2.example/cb"],
                },
            ]
        ),
        "BROKER_ENTRA_AUTHORITY": f"https://login.microsoftonline.com/{TENANT}",
        "BROKER_ENTRA_CLIENT_ID": "app-id",
        "BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID": "mi-id",
        "BROKER_ENTRA_ALLOWED_TENANTS": TENANT,
        "BROKER_ENTRA_REQUIRED_ACRS": "c1",
        "BROKER_PSC_DISCOVERY_URL": "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration",
        "BROKER_PSC_CLIENT_ID": "psc-client",
        "BROKER_PSC_CLIENT_SECRET": "psc-secret",
        "BROKER_TABLES_ENDPOINT": "https://account.table.core.windows.net",
        "BROKER_KEYVAULT_URL": "https://vault.vault.azure.net",
        "BROKER_SIGNING_KEY_NAME": "broker-signing-key",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value != "<unset>"}


def test_a_complete_environment_parses() -> None:
    settings = Settings.from_env(valid_env())
    assert settings.issuer == "https://broker.example"
    assert [client.client_id for client in settings.clients] == ["portail", "jwt-app"]
    assert settings.client("jwt-app").token_endpoint_auth_method == "private_key_jwt"
    assert settings.entra_allowed_tenants == frozenset({TENANT})
    assert settings.entra_max_auth_age == 4 * 3600
    assert settings.session_idle_timeout == 30 * 60


def test_psc_authentication_is_client_secret_basic_by_default_or_private_key_jwt_without_a_secret() -> None:
    assert Settings.from_env(valid_env()).psc_token_auth_method == "client_secret_basic"
    jwt_settings = Settings.from_env(
        valid_env(BROKER_PSC_TOKEN_AUTH_METHOD="private_key_jwt", BROKER_PSC_CLIENT_SECRET="")
    )
    assert (jwt_settings.psc_token_auth_method, jwt_settings.psc_client_secret) == ("private_key_jwt", None)


def test_secrets_do_not_appear_in_repr() -> None:
    assert "psc-secret" not in repr(Settings.from_env(valid_env()))


@pytest.mark.parametrize(
    ("overrides", "named", "says"),
    [
        ({"BROKER_ISSUER": "<unset>"}, "BROKER_ISSUER", "is required"),
        ({"BROKER_ISSUER": "http://broker.example"}, "BROKER_ISSUER", "https URL"),
        ({"BROKER_CLIENTS": "[{"}, "BROKER_CLIENTS", "not valid JSON"),
        ({"BROKER_CLIENTS": "[]"}, "BROKER_CLIENTS", "non-empty"),
        ({"BROKER_CLIENTS": '[{"client_id":"a","client_secret":"s"}]'}, "BROKER_CLIENTS[0] (a)", "redirect_uris"),
        (
            {"BROKER_CLIENTS": '[{"client_id":"a","redirect_uris":["https://a/cb"]}]'},
            "BROKER_CLIENTS[0] (a)",
            "needs client_secret",
        ),
        (
            {"BROKER_CLIENTS": '[{"client_id":"a","client_secret":"sha256:zz","redirect_uris":["https://a/cb"]}]'},
            "BROKER_CLIENTS[0] (a)",
            "64 lowercase hex",
        ),
        (
            {"BROKER_CLIENTS": '[{"client_id":"a","token_endpoint_auth_method":"private_key_jwt",'
             '"redirect_uris":["https://a/cb"]}]'},
            "BROKER_CLIENTS[0] (a)",
            "jwks",
        ),
        (
            {"BROKER_CLIENTS": '[{"client_id":"a","client_secret":"s","redirect_uris":["https://a/cb#frag"]}]'},
            "BROKER_CLIENTS[0] (a)",
            "without fragment",
        ),
        ({"BROKER_ENTRA_ALLOWED_TENANTS": "not-a-guid"}, "BROKER_ENTRA_ALLOWED_TENANTS", "GUID"),
        ({"BROKER_ENTRA_ALLOWED_TENANTS": ""}, "BROKER_ENTRA_ALLOWED_TENANTS", "at least one"),
        ({"BROKER_ENTRA_MAX_AUTH_AGE": "-5"}, "BROKER_ENTRA_MAX_AUTH_AGE", "positive number"),
        ({"BROKER_ENTRA_CLIENT_SECRET": "s"}, "BROKER_ENTRA_CLIENT_SECRET", "not both"),
        ({"BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID": ""}, "BROKER_ENTRA_CLIENT_SECRET", "is required"),
        ({"BROKER_TABLES_ENDPOINT": ""}, "BROKER_TABLES_ENDPOINT", "is required"),
        ({"BROKER_SIGNING_KEY_NAME": ""}, "BROKER_SIGNING_KEY_NAME", "is required"),
        ({"BROKER_SHOW_MIRE": "perhaps"}, "BROKER_SHOW_MIRE", "true or false"),
        ({"BROKER_ENTRA_REQUIRED_ACRS": ""}, "BROKER_ENTRA_REQUIRED_ACRS", "is required"),
        ({"BROKER_ENTRA_REQUIRED_ACRS": "c1 mfa"}, "BROKER_ENTRA_REQUIRED_ACRS", "c1..c25"),
        (
            {"BROKER_PSC_CLIENT_SECRET": "<unset>"},
            "BROKER_PSC_CLIENT_SECRET",
            "is required with BROKER_PSC_TOKEN_AUTH_METHOD=client_secret_basic",
        ),
        (
            {"BROKER_PSC_TOKEN_AUTH_METHOD": "private_key_jwt"},
            "BROKER_PSC_CLIENT_SECRET",
            "must be empty with BROKER_PSC_TOKEN_AUTH_METHOD=private_key_jwt",
        ),
        (
            {"BROKER_PSC_TOKEN_AUTH_METHOD": "client_secret_post"},
            "BROKER_PSC_TOKEN_AUTH_METHOD",
            "must be one of client_secret_basic, private_key_jwt, not 'client_secret_post'",
        ),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(overrides: dict[str, str], named: str, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(valid_env(**overrides))
    message = str(raised.value)
    assert message.startswith(named + ":")
    assert says in message


@pytest.mark.parametrize(("value", "days"), [(None, 365), ("", 365), ("0", 365), ("00", 365), ("1", 1), ("730", 730)])
def test_pairing_reverify_days_is_a_positive_integer_and_0_or_absent_is_the_default(
    value: str | None, days: int
) -> None:
    env = valid_env() if value is None else valid_env(BROKER_PAIRING_REVERIFY_DAYS=value)
    assert Settings.from_env(env).pairing_reverify_days == days


@pytest.mark.parametrize("value", ["-1", "1.5", "365d", "un an"])
def test_pairing_reverify_days_refuses_anything_else_with_its_name(value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(valid_env(BROKER_PAIRING_REVERIFY_DAYS=value))
    assert str(raised.value) == f"BROKER_PAIRING_REVERIFY_DAYS: must be a positive number of days, not {value!r}"


def test_a_duplicate_client_id_is_refused() -> None:
    clients = json.dumps([{"client_id": "a", "client_secret": "s", "redirect_uris": ["https://a/cb"]}] * 2)
    with pytest.raises(SettingsError, match=r"^BROKER_CLIENTS: client_id 'a' is registered twice"):
        Settings.from_env(valid_env(BROKER_CLIENTS=clients))


def test_required_acrs_may_be_explicitly_disabled_with_none_in_the_sandbox_only() -> None:
    sandbox = valid_env(BROKER_ENTRA_REQUIRED_ACRS="none", BROKER_KEYVAULT_URL="", BROKER_SIGNING_KEY_NAME="",
                        BROKER_SIGNING_KEY_FILE=".data/keys/signing-keys.json")
    assert Settings.from_env(sandbox).entra_required_acrs == ()
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(valid_env(BROKER_ENTRA_REQUIRED_ACRS="none"))  # Key Vault: Azure
    assert str(refused.value) == (
        "BROKER_ENTRA_REQUIRED_ACRS: 'none' is for the sandbox only: in Azure list the contexts (c1)"
    )
    assert Settings.from_env(valid_env(BROKER_ENTRA_REQUIRED_ACRS="c1, c25")).entra_required_acrs == ("c1", "c25")


def _bcl_client(**metadata: object) -> str:
    return json.dumps([{"client_id": "rp", "client_secret": "s", "redirect_uris": ["https://rp.example/cb"],
                        **metadata}])


def test_a_back_channel_logout_registration_is_parsed_and_needs_the_queue_service() -> None:
    """Back-Channel Logout 1.0 §2.2; the queue service delivers the tokens (BROKER_QUEUES__queueServiceUri)."""
    clients = _bcl_client(backchannel_logout_uri="https://rp.example/bcl?x=1", backchannel_logout_session_required=True)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(valid_env(BROKER_CLIENTS=clients))
    assert str(refused.value) == "BROKER_QUEUES__queueServiceUri: is required: 'rp' registers a backchannel_logout_uri"
    settings = Settings.from_env(valid_env(BROKER_CLIENTS=clients,
                                           BROKER_QUEUES__queueServiceUri="https://account.queue.core.windows.net"))
    client = settings.client("rp")
    assert client is not None and client.backchannel_logout_uri == "https://rp.example/bcl?x=1"
    assert client.backchannel_logout_session_required is True and settings.has_queues
    assert (settings.backchannel_retry_seconds, settings.backchannel_max_attempts, settings.backchannel_timeout) == (
        30, 5, 5)
    plain = Settings.from_env(valid_env(BROKER_CLIENTS=_bcl_client()))
    assert plain.clients[0].backchannel_logout_uri is None and not plain.has_queues


@pytest.mark.parametrize(("metadata", "says"), [
    ({"backchannel_logout_uri": "http://rp.example/bcl"}, "is not an https URI without fragment"),
    ({"backchannel_logout_uri": "https://rp.example/bcl#f"}, "is not an https URI without fragment"),
    ({"backchannel_logout_uri": 7}, "is not an https URI without fragment"),
    ({"backchannel_logout_session_required": "yes"}, "backchannel_logout_session_required must be true or false"),
])
def test_a_bad_back_channel_logout_registration_is_refused(metadata: dict[str, object], says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(valid_env(BROKER_CLIENTS=_bcl_client(**metadata), BROKER_QUEUES="UseDevelopmentStorage=true"))
    assert str(refused.value).startswith("BROKER_CLIENTS[0] (rp): ") and says in str(refused.value)


def test_only_one_queue_connection_is_accepted() -> None:
    with pytest.raises(SettingsError, match=r"^BROKER_QUEUES: set only one"):
        Settings.from_env(valid_env(BROKER_QUEUES="UseDevelopmentStorage=true",
                                    BROKER_QUEUES__queueServiceUri="https://account.queue.core.windows.net"))
