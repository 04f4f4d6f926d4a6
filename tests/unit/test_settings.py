"""Settings: one declaration each, flag over environment over default, one-line errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from crm import settings as s
from crm.errors import InvalidInput
from crm.setting import Setting, SettingError, StartupError
from crm.settings import Settings, resolve
from crm.startup import SettingsParser, attributed_to, exit_on_error

RELAY_USES = (s.EVENT_STORE_URL, s.RELAY_CHECKPOINT_URL, s.KAFKA_PARTITIONS, s.LOG_FORMAT)


def test_every_setting_is_declared_once_with_its_own_flag_and_variable() -> None:
    names = [setting.name for setting in s.ALL]
    assert names == sorted(set(names), key=names.index)
    assert set(names) == {f.name for f in fields(Settings)}
    assert len({setting.flag for setting in s.ALL}) == len(s.ALL)
    assert len({setting.env for setting in s.ALL}) == len(s.ALL)
    for setting in s.ALL:
        assert setting.env.startswith("CRM_") and setting.flag.startswith("--"), setting
        assert setting.help, setting


def test_the_defaults_parse() -> None:
    defaults = Settings.defaults()
    assert defaults.listen == "127.0.0.1:50051"
    assert defaults.data_dir == Path("var")
    assert defaults.event_store_url == "sqlite:///var/events.db"
    assert defaults.read_store_url == "sqlite:///var/views.db"
    assert defaults.relay_checkpoint_url == "sqlite:///var/relay.db"
    assert defaults.deadline_checkpoint_url == "sqlite:///var/deadlines.db"
    assert defaults.kafka_partitions == 6
    assert defaults.sla_policy_file is None
    assert defaults.in_process_projector and defaults.in_process_deadlines


def test_a_flag_wins_over_the_environment_which_wins_over_the_default() -> None:
    environ = {"CRM_KAFKA_PARTITIONS": "4", "CRM_LOG_FORMAT": "json"}
    chosen = resolve(RELAY_USES, {"kafka_partitions": "3"}, environ)
    assert chosen.kafka_partitions == 3
    assert chosen.log_format == "json"
    assert resolve(RELAY_USES, {}, {}).log_format == "auto"


def test_an_empty_value_counts_as_not_given() -> None:
    chosen = resolve(RELAY_USES, {}, {"CRM_EVENT_STORE_URL": "", "CRM_DATA_DIR": "/x"})
    assert chosen.event_store_url == "sqlite:////x/events.db"


@pytest.mark.parametrize(
    ("uses", "field", "file"),
    [
        ((s.EVENT_STORE_URL,), "event_store_url", "events.db"),
        ((s.READ_STORE_URL,), "read_store_url", "views.db"),
        ((s.RELAY_CHECKPOINT_URL,), "relay_checkpoint_url", "relay.db"),
        ((s.DEADLINE_CHECKPOINT_URL,), "deadline_checkpoint_url", "deadlines.db"),
    ],
)
def test_store_urls_follow_the_data_dir_in_any_process(
    uses: tuple[Setting[Any], ...], field: str, file: str
) -> None:
    """A process reading a store URL reads the data dir too, even if it does not name it."""
    from_env = resolve(uses, {}, {"CRM_DATA_DIR": "/x"})
    assert getattr(from_env, field) == f"sqlite:////x/{file}"
    from_flag = resolve(uses, {"data_dir": "rel/dir/"}, {"CRM_DATA_DIR": "/x"})
    assert getattr(from_flag, field) == f"sqlite:///rel/dir/{file}"
    explicit = resolve(uses, {field: "sqlite:///elsewhere.db"}, {"CRM_DATA_DIR": "/x"})
    assert getattr(explicit, field) == "sqlite:///elsewhere.db"


def test_typed_values_given_in_code_move_the_derived_defaults_too(tmp_path: Path) -> None:
    chosen = Settings.defaults(data_dir=tmp_path, in_process_deadlines=False)
    assert chosen.event_store_url == f"sqlite:///{tmp_path / 'events.db'}"
    assert not chosen.in_process_deadlines
    with pytest.raises(TypeError, match="no_such"):
        Settings.defaults(no_such=1)


def test_a_process_ignores_the_variables_of_settings_it_does_not_read() -> None:
    chosen = resolve(RELAY_USES, {}, {"CRM_LISTEN": "garbage", "CRM_PROJECTOR": "maybe"})
    assert chosen.listen == "127.0.0.1:50051"


@pytest.mark.parametrize(
    ("setting", "text", "problem"),
    [
        (s.KAFKA_PARTITIONS, "abc", "'abc' is not a whole number"),
        (s.KAFKA_PARTITIONS, "0", "0 is too small"),
        (s.LOG_FORMAT, "xml", "'xml' is not one of auto, json, text"),
        (s.LISTEN, "nonsense", "'nonsense' is not an address"),
        (s.LISTEN, "127.0.0.1:65536", "is not an address"),
        (s.LISTEN, ":50051", "is not an address"),
        (s.LISTEN, "::1:50051", "IPv6 host without brackets"),
        (s.KAFKA_BOOTSTRAP, "a:1,b", "'b' is not a broker address"),
        (s.KAFKA_SESSION_TIMEOUT, "0", "out of range"),
        (s.GRACE_SECONDS, "soon", "not a number of seconds"),
        (s.GRACE_SECONDS, "nan", "out of range"),
        (s.PROJECTOR, "maybe", "not one of in-process, off"),
        (s.TOPIC_NAMESPACE, "a/b", "Kafka topic names cannot hold"),
        (s.SLA_POLICY_FILE, "/no/such/policy.json", "no file '/no/such/policy.json'"),
        (s.LOCAL_KAFKA_PORT, "http", "not a port"),
    ],
)
def test_a_wrong_value_names_the_flag_and_the_variable(
    setting: Setting[Any], text: str, problem: str
) -> None:
    with pytest.raises(SettingError) as raised:
        resolve((setting,), {}, {setting.env: text})
    assert raised.value.setting is setting
    assert str(raised.value).startswith(f"{setting.flag} / {setting.env}: ")
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("setting", "text", "value"),
    [
        (s.LISTEN, "[::]:0", "[::]:0"),
        (s.LISTEN, "localhost:50051", "localhost:50051"),
        (s.KAFKA_BOOTSTRAP, "a:9092, b:9093", "a:9092, b:9093"),
        (s.PROJECTOR, "off", False),
        (s.GRACE_SECONDS, "0", 0.0),
        (s.TOPIC_NAMESPACE, "t42x1.", "t42x1."),
    ],
)
def test_good_values_parse(setting: Setting[Any], text: str, value: object) -> None:
    assert getattr(resolve((setting,), {}, {setting.env: text}), setting.name) == value


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(SettingError, match="is not a directory"):
        resolve((s.DATA_DIR,), {"data_dir": str(file)}, {})


def test_help_lists_each_setting_read_with_its_variable_and_default() -> None:
    text = SettingsParser("crm-relay", None, RELAY_USES).format_help()
    for setting in (*RELAY_USES, s.DATA_DIR):
        assert setting.flag in text and setting.env in text
    assert "--listen" not in text
    assert "default: sqlite:///<data-dir>/relay.db" in " ".join(text.split())


def test_the_parser_resolves_flags_then_environment() -> None:
    parser = SettingsParser("crm-relay", None, RELAY_USES)
    chosen, _ = parser.settings(["--partitions", "2"], {"CRM_DATA_DIR": "/d"})
    assert (chosen.kafka_partitions, chosen.event_store_url) == (2, "sqlite:////d/events.db")


def test_a_usage_error_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        SettingsParser("crm-relay", None, RELAY_USES).settings(["--bogus"], {})
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "crm-relay: unrecognized arguments: --bogus; see crm-relay --help\n"
    )


def test_a_startup_error_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited, exit_on_error("crm-relay"):
        resolve(RELAY_USES, {}, {"CRM_KAFKA_PARTITIONS": "abc"})
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "crm-relay: --partitions / CRM_KAFKA_PARTITIONS: 'abc' is not a whole number;"
        " give one >= 1\n"
    )


def test_errors_from_using_a_value_are_that_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as raised, attributed_to(s.EVENT_STORE_URL):
        raise InvalidInput("event_store_url", "unsupported URL 'x:'")
    assert str(raised.value) == "--event-store-url / CRM_EVENT_STORE_URL: unsupported URL 'x:'"
    missing = tmp_path / "policy.json"
    with pytest.raises(SettingError) as raised, attributed_to(s.SLA_POLICY_FILE, missing):
        missing.read_text()
    assert raised.value.problem == f"No such file or directory: {missing}"
    with pytest.raises(StartupError) as failed, attributed_to("--policy-file", "p.json"):
        raise InvalidInput("$", "not valid JSON")
    assert str(failed.value) == "--policy-file: p.json: $: not valid JSON"


def settings_table() -> str:
    """The README's table of settings, as crm/settings.py declares them."""
    rows = [
        "| setting | flag | environment variable | default | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for setting in s.ALL:
        default = f"`{setting.default}`" if setting.default else "none"
        names = f"`{setting.name}` | `{setting.flag}` | `{setting.env}`"
        rows.append(f"| {names} | {default} | {setting.help} |")
    return "\n".join(rows) + "\n"


def test_the_readme_documents_every_setting_once_as_declared() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = settings_table()
    assert table in readme, f"README.md's settings table should read:\n{table}"
    for setting in s.ALL:
        assert readme.count(f"`{setting.env}`") == 1, f"{setting.env} is documented twice"
        assert readme.count(f"`{setting.flag}`") == 1, f"{setting.flag} is documented twice"
