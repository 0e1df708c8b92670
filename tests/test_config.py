"""BackpackConfig: every field's valid and invalid input, loaders, and that the secret never leaks."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey
from pydantic import SecretStr, ValidationError

from backpack.config import (
    NATIVE_ENV,
    PRODUCTION_REST_URL,
    PRODUCTION_WS_URL,
    BackpackConfig,
    ConfigError,
    format_errors,
)
from backpack.protocol.auth import Signer


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def keypair() -> tuple[str, str]:
    key = SigningKey.generate()
    return b64(bytes(key)), b64(bytes(key.verify_key))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NATIVE_ENV, raising=False)


@pytest.fixture
def pair() -> tuple[str, str]:
    return keypair()


def load_error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        BackpackConfig.from_dict(data)
    return info.value


def assert_no_secret(secret: str, *texts: object) -> None:
    for text in texts:
        assert secret not in str(text)
        assert secret not in repr(text)


# -- defaults and credentials ------------------------------------------------------------------


def test_defaults() -> None:
    c = BackpackConfig()
    assert (c.rest_url, c.ws_url) == (PRODUCTION_REST_URL, PRODUCTION_WS_URL)
    assert c.window_ms == 5000 and c.depth_limit == 1000 and c.depth_speed is None
    assert c.symbol_cache_ttl == 3600 and c.native_enabled is True
    assert (c.ws_watchdog_seconds, c.rest_timeout, c.rest_retries) == (130, 10, 5)
    assert (c.breaker_threshold, c.breaker_reset_seconds) == (5, 30)
    assert (c.private_subscribe_retries, c.subscribe_batch_size) == (3, 50)
    assert c.rest_proxy is None and c.ws_proxy is None
    assert not c.sandbox and not c.has_credentials and c.signer() is None and c.api_key is None


def test_private_key_derives_api_key_and_signs(pair: tuple[str, str]) -> None:
    seed, pub = pair
    c = BackpackConfig(private_key=seed)
    assert c.api_key == pub and c.has_credentials
    signer = c.signer()
    assert isinstance(signer, Signer) and signer.api_key == pub
    signed = signer.sign("balanceQuery", None, 1_700_000_000_000, c.window_ms)
    VerifyKey(base64.b64decode(pub)).verify(signed.signing_string.encode(), base64.b64decode(signed.signature))


def test_matching_pair_accepted(pair: tuple[str, str]) -> None:
    seed, pub = pair
    c = BackpackConfig.from_dict({"api_key": pub, "private_key": seed})
    assert c.api_key == pub and c.signer().api_key == pub


def test_api_key_alone_is_not_credentials(pair: tuple[str, str]) -> None:
    c = BackpackConfig(api_key=pair[1])
    assert c.api_key == pair[1] and not c.has_credentials and c.signer() is None


def test_unverified_api_key_is_not_shown_but_a_verified_one_is(pair: tuple[str, str]) -> None:
    """Alone, an api_key may be a seed in the wrong field; next to its private key it is the public key."""
    seed, pub = pair
    alone = BackpackConfig(api_key=pub)
    for rendering in (repr(alone), str(alone), alone.model_dump(), alone.model_dump(mode="json")):
        assert pub not in str(rendering)
    assert alone.model_dump(mode="json")["api_key"] == "**********"
    verified = BackpackConfig(api_key=pub, private_key=seed)
    assert pub in repr(verified) and verified.model_dump()["api_key"] == pub
    assert verified.model_dump(mode="json")["api_key"] == pub


@pytest.mark.parametrize("field", ["rest_url", "ws_url", "rest_proxy", "ws_proxy"])
def test_every_url_field_masks_its_password_alike(field: str) -> None:
    scheme = {"rest_url": "https", "ws_url": "wss"}.get(field, "http")
    url = f"{scheme}://user:hunter2@127.0.0.1:3128"
    c = BackpackConfig(**{field: url})
    assert getattr(c, field) == url
    masked = f"{scheme}://user:***@127.0.0.1:3128"
    assert c.model_dump()[field] == c.model_dump(mode="json")[field] == masked
    assert f"{field}={masked!r}" in repr(c)
    bad = load_error({field: f"{scheme}://user:hunter2@127.0.0.1:99999"})
    assert "hunter2" not in str(bad)


def test_pair_mismatch_names_api_key_and_hides_secret(pair: tuple[str, str]) -> None:
    seed, _ = pair
    other = keypair()[1]
    err = load_error({"api_key": other, "private_key": seed})
    assert str(err).startswith("backpack.api_key: api_key does not match the private key")
    assert "regenerate the key pair" in str(err)
    assert_no_secret(seed, err)
    with pytest.raises(ValidationError) as info:
        BackpackConfig(api_key=other, private_key=seed)
    assert_no_secret(seed, info.value, info.value.errors(), format_errors(info.value))


@pytest.mark.parametrize(
    ("make_seed", "problem"),
    [
        (lambda s: "!!" + s, "private key is not valid base64"),
        (lambda s: b64(base64.b64decode(s)[:16]), "private key must decode to 32 bytes, got 16"),
        (lambda s: b64(base64.b64decode(s) * 2), "private key must decode to 32 bytes, got 64"),
        (lambda s: "   ", "private key is empty"),
    ],
)
def test_bad_seed_error_never_echoes_input(pair: tuple[str, str], make_seed, problem: str) -> None:
    bad = make_seed(pair[0])
    err = load_error({"private_key": bad})
    assert str(err) == f"backpack.private_key: {problem}"
    with pytest.raises(ValidationError) as info:
        BackpackConfig(private_key=bad)
    exc = info.value
    for rendering in (str(exc), repr(exc), str(exc.errors()), exc.json(), format_errors(exc)):
        if bad.strip():
            assert bad not in rendering
    assert "private_key" in str(exc)


def test_bad_seed_type_rejected() -> None:
    assert str(load_error({"private_key": 12345})) == "backpack.private_key: must be a base64 string"


@pytest.mark.parametrize("bad", ["not base64!", b64(b"\x01" * 31), ""])
def test_bad_api_key(bad: str) -> None:
    err = str(load_error({"api_key": bad}))
    assert err.startswith("backpack.api_key: API key ")
    assert "got" not in err or "got 31" in err  # api_key values are not echoed (it may be a swapped secret)


def test_secret_absent_from_every_rendering(pair: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    seed, pub = pair
    caplog.set_level(logging.DEBUG)
    c = BackpackConfig.load({"key_secret": seed, "key_id": pub})
    renderings = [repr(c), str(c), c.model_dump(), c.model_dump(mode="json"), c.model_dump_json(), repr(c.signer())]
    renderings += [f"{c}", format(c), c.model_copy()]
    assert_no_secret(seed, *renderings)
    assert c.model_dump(mode="json")["private_key"] == "**********"
    assert isinstance(c.private_key, SecretStr) and c.private_key.get_secret_value() == seed
    assert caplog.records, "load() should log the loaded config at DEBUG"
    for record in caplog.records:
        assert seed not in record.getMessage()


def test_frozen(pair: tuple[str, str]) -> None:
    c = BackpackConfig(private_key=pair[0])
    with pytest.raises(ValidationError):
        c.window_ms = 10  # type: ignore[misc]


def test_equality_and_hash(monkeypatch: pytest.MonkeyPatch, pair: tuple[str, str]) -> None:
    a, b = BackpackConfig(private_key=pair[0]), BackpackConfig(private_key=pair[0], api_key=pair[1])
    assert a == b and hash(a) == hash(b) and a == a.model_copy(deep=True)
    assert a != BackpackConfig(private_key=keypair()[0]) and a != BackpackConfig()
    monkeypatch.setenv("BP_SEED_TEST", pair[0])
    from_env = BackpackConfig(private_key_env="BP_SEED_TEST")
    monkeypatch.setenv("BP_SEED_TEST", keypair()[0])
    assert from_env != BackpackConfig(private_key_env="BP_SEED_TEST")  # same name, different secret
    assert len({BackpackConfig(), BackpackConfig(window_ms=9), BackpackConfig()}) == 2


def test_redact(pair: tuple[str, str]) -> None:
    c = BackpackConfig(private_key=pair[0])
    assert c.redact(f"x {pair[0]} y") == "x <redacted> y"
    assert BackpackConfig().redact("nothing") == "nothing"


@settings(max_examples=40, deadline=None)
@given(seed_bytes=st.binary(min_size=32, max_size=32), wrong=st.binary(min_size=32, max_size=32))
def test_secret_never_rendered_property(seed_bytes: bytes, wrong: bytes) -> None:
    """For any seed, neither the config's renderings nor a mismatch error ever contain the seed text."""
    seed = b64(seed_bytes)
    c = BackpackConfig(private_key=seed)
    assert_no_secret(seed, repr(c), c.model_dump(), c.model_dump_json())
    if b64(wrong) != c.api_key:
        with pytest.raises(ValidationError) as info:
            BackpackConfig(private_key=seed, api_key=b64(wrong))
        assert_no_secret(seed, info.value, info.value.errors(), format_errors(info.value))


# -- secret sources ----------------------------------------------------------------------------


def test_private_key_env(monkeypatch: pytest.MonkeyPatch, pair: tuple[str, str]) -> None:
    monkeypatch.setenv("BP_SEED_TEST", f"  {pair[0]}\n")
    c = BackpackConfig.from_dict({"private_key_env": "BP_SEED_TEST"})
    assert c.api_key == pair[1] and c.has_credentials
    assert c.private_key is None  # the seed stays out of the dumpable fields
    assert_no_secret(pair[0], repr(c), c.model_dump())


def test_private_key_env_from_context(pair: tuple[str, str]) -> None:
    c = BackpackConfig.from_dict({"private_key_env": "SEED"}, environ={"SEED": pair[0]})
    assert c.api_key == pair[1]


def test_private_key_env_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BP_SEED_ABSENT", raising=False)
    err = str(load_error({"private_key_env": "BP_SEED_ABSENT"}))
    assert err == "backpack.private_key_env: environment variable BP_SEED_ABSENT is not set or empty"


def test_private_key_env_bad_content(monkeypatch: pytest.MonkeyPatch, pair: tuple[str, str]) -> None:
    bad = pair[0][:-8]
    monkeypatch.setenv("BP_SEED_TEST", bad)
    err = str(load_error({"private_key_env": "BP_SEED_TEST"}))
    assert err.startswith("backpack.private_key_env: private key from private_key_env ")
    assert bad not in err


@pytest.mark.parametrize("bad", ["", "A=B", 3])
def test_private_key_env_bad_name(bad: object) -> None:
    assert "must be the name of an environment variable" in str(load_error({"private_key_env": bad}))


def test_private_key_file(tmp_path: Path, pair: tuple[str, str]) -> None:
    path = tmp_path / "seed"
    path.write_text(f"\n{pair[0]}  \n")
    c = BackpackConfig.from_dict({"private_key_file": str(path)})
    assert c.api_key == pair[1] and c.private_key_file == path


def test_private_key_file_problems(tmp_path: Path, pair: tuple[str, str]) -> None:
    missing = tmp_path / "nope"
    assert str(load_error({"private_key_file": str(missing)})) == (
        f"backpack.private_key_file: secret file {missing} does not exist"
    )
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    assert str(load_error({"private_key_file": str(empty)})).endswith(f"secret file {empty} is empty")
    short = tmp_path / "short"
    short.write_text(b64(base64.b64decode(pair[0])[:20]))
    err = str(load_error({"private_key_file": str(short)}))
    assert err.endswith("must decode to 32 bytes, got 20") and short.read_text() not in err


def test_at_most_one_secret_source(pair: tuple[str, str], tmp_path: Path) -> None:
    err = str(load_error({"private_key": pair[0], "private_key_env": "X", "private_key_file": str(tmp_path)}))
    assert err == (
        "backpack: give at most one of private_key, private_key_env, private_key_file "
        "(got private_key and private_key_env and private_key_file)"
    )
    assert pair[0] not in err


def test_alias_and_name_together(pair: tuple[str, str]) -> None:
    err = str(load_error({"private_key": pair[0], "key_secret": pair[0]}))
    assert err == "backpack.private_key: give either private_key or its cryptofeed alias key_secret, not both"
    assert pair[0] not in err


# -- unknown keys ------------------------------------------------------------------------------


def test_unknown_key_suggests_and_hides_value(pair: tuple[str, str]) -> None:
    err = str(load_error({"privat_key": pair[0], "windw_ms": 100}))
    assert "backpack.privat_key: unknown setting (did you mean 'private_key'?)" in err
    assert "backpack.windw_ms: unknown setting (did you mean 'window_ms'?)" in err
    assert pair[0] not in err
    with pytest.raises(ValidationError) as info:
        BackpackConfig.model_validate({"privat_key": pair[0]})
    assert_no_secret(pair[0], info.value, info.value.errors())


def test_unknown_key_without_close_match_lists_known() -> None:
    err = str(load_error({"zzzzzz": 1}))
    assert err.startswith("backpack.zzzzzz: unknown setting; known settings: ") and "window_ms" in err


@pytest.mark.parametrize("bad", [None, [1, 2], "text"])
def test_from_dict_needs_mapping(bad: object) -> None:
    if bad is None:
        assert BackpackConfig.from_dict(None) == BackpackConfig()
        return
    with pytest.raises(ConfigError, match="backpack: must be a mapping"):
        BackpackConfig.from_dict(bad)  # type: ignore[arg-type]


def test_non_string_key() -> None:
    with pytest.raises(ConfigError, match="setting names must be strings"):
        BackpackConfig.from_dict({1: 2})  # type: ignore[dict-item]


# -- URLs and sandbox ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "given", "stored"),
    [
        ("rest_url", "https://api.backpack.exchange/", PRODUCTION_REST_URL),
        ("rest_url", "HTTP://127.0.0.1:8080//", "http://127.0.0.1:8080"),
        ("rest_url", "http://Localhost:1/prefix/", "http://localhost:1/prefix"),
        ("ws_url", "wss://ws.backpack.exchange/", PRODUCTION_WS_URL),
        ("ws_url", "ws://127.0.0.1:9000/", "ws://127.0.0.1:9000"),
    ],
)
def test_url_normalised(field: str, given: str, stored: str) -> None:
    assert getattr(BackpackConfig.from_dict({field: given}), field) == stored


@pytest.mark.parametrize(
    ("field", "bad", "problem"),
    [
        ("rest_url", "wss://api.backpack.exchange", "scheme must be one of http, https"),
        ("rest_url", "ftp://x", "scheme must be one of http, https"),
        ("rest_url", "api.backpack.exchange", "scheme must be one of http, https"),
        ("rest_url", "http://", "has no host"),
        ("rest_url", "https://x/?a=1", "must not carry a query string or fragment"),
        ("rest_url", "http://h:99999", "is not a valid URL"),
        ("rest_url", "", "must be a http(s) URL"),
        ("rest_url", 5, "must be a http(s) URL"),
        ("ws_url", "https://ws.backpack.exchange", "scheme must be one of ws, wss"),
    ],
)
def test_url_rejected(field: str, bad: object, problem: str) -> None:
    assert str(load_error({field: bad})) == f"backpack.{field}: {problem} (got {bad!r})"


def test_sandbox_when_either_endpoint_differs() -> None:
    assert not BackpackConfig(rest_url=PRODUCTION_REST_URL + "/", ws_url=PRODUCTION_WS_URL).sandbox
    assert BackpackConfig(rest_url="http://127.0.0.1:1").sandbox
    assert BackpackConfig(ws_url="ws://127.0.0.1:1").sandbox


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks5h"])
def test_proxy_schemes(scheme: str) -> None:
    c = BackpackConfig(rest_proxy=f"{scheme}://127.0.0.1:3128", ws_proxy=f"{scheme}://127.0.0.1:3129/")
    assert c.rest_proxy == f"{scheme}://127.0.0.1:3128" and c.ws_proxy == f"{scheme}://127.0.0.1:3129"


@pytest.mark.parametrize("bad", ["socks4://h:1", "ws://h:1", "h:1", ""])
def test_proxy_rejected(bad: str) -> None:
    err = str(load_error({"ws_proxy": bad}))
    assert err.startswith("backpack.ws_proxy: ") and "(got" not in err  # proxies may embed a password


def test_proxy_password_masked() -> None:
    c = BackpackConfig(rest_proxy="http://user:hunter2@127.0.0.1:3128")
    assert c.rest_proxy == "http://user:hunter2@127.0.0.1:3128"  # the transport needs the real value
    assert "hunter2" not in repr(c) and "hunter2" not in str(c) and "hunter2" not in c.model_dump_json()
    assert c.model_dump()["rest_proxy"] == "http://user:***@127.0.0.1:3128"  # python mode too
    assert "user:***@127.0.0.1:3128" in repr(c)
    v6 = BackpackConfig(ws_proxy="socks5://u:p%40ss@[::1]:1080")
    assert "socks5://u:***@[::1]:1080" in repr(v6) and "p%40ss" not in v6.model_dump_json()


# -- numbers and choices -----------------------------------------------------------------------


NUMERIC_CASES = [
    # field, accepted inputs (given -> stored), rejected inputs (given -> message)
    ("window_ms", [(1, 1), (60000, 60000), ("250", 250), (7.0, 7)],
     [(0, "must be between 1 and 60000"), (60001, "must be between 1 and 60000"), (1.5, "must be an integer")]),
    ("symbol_cache_ttl", [(0.5, 0.5), (10, 10.0)], [(0, "must be > 0"), (-1, "must be > 0")]),
    ("ws_watchdog_seconds", [(1, 1.0)], [(0, "must be > 0")]),
    ("rest_timeout", [(0.1, 0.1)], [(-0.1, "must be > 0"), (float("inf"), "must be a finite number")]),
    ("rest_retries", [(0, 0), (9, 9)], [(-1, "must be >= 0")]),
    ("breaker_threshold", [(1, 1)], [(0, "must be >= 1")]),
    ("breaker_reset_seconds", [(2.5, 2.5)], [(0, "must be > 0")]),
    ("private_subscribe_retries", [(0, 0)], [(-2, "must be >= 0")]),
    ("subscribe_batch_size", [(1, 1), (500, 500)], [(0, "must be >= 1")]),
]


@pytest.mark.parametrize(("field", "good", "bad"), NUMERIC_CASES, ids=[c[0] for c in NUMERIC_CASES])
def test_numeric_fields(field: str, good: list, bad: list) -> None:
    for value, stored in good:
        assert getattr(BackpackConfig.from_dict({field: value}), field) == stored
    for value, problem in bad + [(True, "must be a number, not a boolean"), ("abc", "must be a")]:
        err = str(load_error({field: value}))
        assert err.startswith(f"backpack.{field}: {problem}") and err.endswith(f"(got {value!r})"), err
        assert err.count("\n") == 0


def test_format_errors_example_line() -> None:
    with pytest.raises(ValidationError) as info:
        BackpackConfig(window_ms=0)
    assert format_errors(info.value) == "backpack.window_ms: must be between 1 and 60000 (got 0)"
    assert format_errors(info.value, prefix="cfg") == "cfg.window_ms: must be between 1 and 60000 (got 0)"


def test_several_problems_one_line_each() -> None:
    err = load_error({"window_ms": 0, "depth_limit": 3, "rest_url": "ftp://x"})
    assert len(err.problems) == 3 and str(err).count("\n") == 2


@pytest.mark.parametrize("limit", [5, 10, 20, 50, 100, 500, 1000, "100"])
def test_depth_limit_accepted(limit: object) -> None:
    assert BackpackConfig.from_dict({"depth_limit": limit}).depth_limit == int(limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [0, 7, 2000, -5])
def test_depth_limit_rejected(limit: int) -> None:
    assert str(load_error({"depth_limit": limit})) == (
        f"backpack.depth_limit: must be one of 5, 10, 20, 50, 100, 500, 1000 (got {limit})"
    )


@pytest.mark.parametrize(("given", "stored"), [(None, None), ("realtime", None), ("200ms", "200ms"), ("1000ms", "1000ms")])
def test_depth_speed_accepted(given: object, stored: object) -> None:
    assert BackpackConfig.from_dict({"depth_speed": given}).depth_speed == stored


@pytest.mark.parametrize("bad", ["100ms", 200, "600"])
def test_depth_speed_rejected(bad: object) -> None:
    assert str(load_error({"depth_speed": bad})).startswith("backpack.depth_speed: must be one of 200ms, 600ms")


# -- native_enabled and its environment override -----------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [("1", True), ("0", False), ("TRUE", True), ("false", False), ("Yes", True), ("no", False), ("on", True),
     (" OFF ", False)],
)
def test_native_env_override_wins(monkeypatch: pytest.MonkeyPatch, word: str, expected: bool) -> None:
    monkeypatch.setenv(NATIVE_ENV, word)
    assert BackpackConfig.from_dict({"native_enabled": not expected}).native_enabled is expected
    assert BackpackConfig().native_enabled is expected


@pytest.mark.parametrize("bad", ["maybe", "", "2", "enable"])
def test_native_env_invalid(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(NATIVE_ENV, bad)
    err = str(load_error({}))
    assert err == (
        f"backpack.native_enabled: environment variable {NATIVE_ENV} must be one of "
        f"1/0/true/false/yes/no/on/off, case-insensitive (got {bad!r})"
    )


def test_native_from_file_value() -> None:
    assert BackpackConfig.from_dict({"native_enabled": False}).native_enabled is False
    assert BackpackConfig.from_dict({"native_enabled": "off"}).native_enabled is False
    assert str(load_error({"native_enabled": 3})).startswith("backpack.native_enabled: must be a boolean")


def test_native_env_via_context() -> None:
    assert BackpackConfig.from_dict({}, environ={NATIVE_ENV: "no"}).native_enabled is False


# -- YAML and load() -----------------------------------------------------------------------------


def cryptofeed_yaml(section: str) -> str:
    return (
        "log:\n  filename: feedhandler.log\n  level: WARNING\n"
        "binance:\n  key_id: abc\n  key_secret: def\n"
        f"{section}"
    )


def test_yaml_text_with_cryptofeed_aliases(pair: tuple[str, str]) -> None:
    seed, pub = pair
    text = cryptofeed_yaml(
        f"backpack:\n  key_id: {pub}\n  key_secret: {seed}\n  window_ms: 10000\n  depth_speed: 200ms\n"
        "  rest_url: http://127.0.0.1:8080/\n"
    )
    c = BackpackConfig.from_yaml(text)
    assert c.api_key == pub and c.has_credentials and c.window_ms == 10000 and c.depth_speed == "200ms"
    assert c.rest_url == "http://127.0.0.1:8080" and c.sandbox


def test_yaml_file_path_and_str(tmp_path: Path, pair: tuple[str, str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(cryptofeed_yaml(f"backpack:\n  private_key: {pair[0]}\n  native_enabled: false\n"))
    for source in (path, str(path)):
        c = BackpackConfig.from_yaml(source)
        assert c.api_key == pair[1] and c.native_enabled is False
    other = tmp_path / "settings.conf"  # any existing file path works, whatever its suffix
    other.write_text("backpack:\n  window_ms: 42\n")
    assert BackpackConfig.from_yaml(str(other)).window_ms == 42


def test_yaml_without_section_gives_defaults() -> None:
    assert BackpackConfig.from_yaml(cryptofeed_yaml("")) == BackpackConfig()
    assert BackpackConfig.from_yaml("backpack:\n") == BackpackConfig()
    assert BackpackConfig.from_yaml("") == BackpackConfig()


def test_yaml_errors(tmp_path: Path, pair: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        BackpackConfig.from_yaml(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"config: not valid YAML at line \d+$"):
        BackpackConfig.from_yaml("backpack:\n  a: [1,\n")
    with pytest.raises(ConfigError, match=r"top level must be a mapping"):
        BackpackConfig.from_yaml("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"backpack: must be a mapping"):
        BackpackConfig.from_yaml("backpack: 5\n")
    with pytest.raises(ConfigError) as info:
        BackpackConfig.from_yaml(f"backpack:\n  key_secret: {pair[0][:-4]}\n  window: 5\n")
    assert "backpack.key_secret: private key must decode to 32 bytes" in str(info.value)  # named as written
    assert "backpack.window: unknown setting (did you mean 'window_ms'?)" in str(info.value)
    assert pair[0][:-4] not in str(info.value)


def test_load_accepts_everything(tmp_path: Path, pair: tuple[str, str]) -> None:
    base = BackpackConfig(window_ms=77)
    assert BackpackConfig.load(base) is base
    assert BackpackConfig.load(None) == BackpackConfig()
    assert BackpackConfig.load({"window_ms": 77}) == base
    assert BackpackConfig.load({"backpack": {"window_ms": 77}, "log": {"level": "INFO"}}) == base
    assert BackpackConfig.load({"BACKPACK": {"window_ms": 77}}) == base
    path = tmp_path / "c.yml"
    path.write_text("backpack:\n  window_ms: 77\n")
    assert BackpackConfig.load(path) == base and BackpackConfig.load(str(path)) == base
    with pytest.raises(ConfigError, match="cannot load a config from int"):
        BackpackConfig.load(5)  # type: ignore[arg-type]
