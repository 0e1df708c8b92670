"""A seed pasted into the wrong place never comes back: not in an error, a repr, a dump or a log line.

Every config field (and its cryptofeed alias, and an unknown key, and the key name itself), every CLI
flag and cryptofeed's ``http_proxy`` argument gets a freshly generated seed, bare and with whitespace
around it; URL fields also get it as the password of an otherwise valid URL, which must still reach
the transport unmasked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from pydantic import ValidationError

from backpack.config import (
    NATIVE_ENV,
    BackpackConfig,
    ConfigError,
    SecretSourceError,
    format_errors,
    read_secret,
    with_http_proxy,
)
from backpack.live import LiveTransport
from backpack.redaction import HIDDEN, looks_like_key, mask_url, scrub
from backpack.rest import RestClient
from backpack.session import WsSessionManager
from backpack.transport import TransportError
from harness.cli import main

from .test_proxy import GUARD, free_port, origin  # noqa: F401  (origin is a fixture)

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# How a seed arrives where it does not belong: as copied, or with the whitespace a paste or a file adds.
PASTES = [
    lambda s: s,
    lambda s: s + "\n",
    lambda s: f"  {s}  ",
    lambda s: f"\t{s}\r\n",
    lambda s: s.rstrip("="),  # padding lost in the copy
]
seeds = st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode())
pastes = st.sampled_from(range(len(PASTES)))

CONFIG_FIELDS = sorted(BackpackConfig.model_fields) + ["key_id", "key_secret", "privat_key", "zzz_unknown"]
URL_FIELDS = {
    "rest_url": "https://{userinfo}api.example.test",
    "ws_url": "wss://{userinfo}ws.example.test",
    "rest_proxy": "http://{userinfo}127.0.0.1:3128",
    "ws_proxy": "socks5://{userinfo}127.0.0.1:1080",
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def assert_absent(needle: str, texts: list[Any]) -> None:
    assert needle.strip(), "the needle must be non-trivial"
    # Path() folds "//" into "/": a seed that went through it is still the seed
    needles = {needle, needle.replace("//", "/")}
    for text in texts:
        for rendering in (str(text), repr(text)):
            for n in needles:
                assert n not in rendering, f"secret echoed in: {rendering[:300]}"


def config_renderings(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[Any]:
    """Everything a user or a log could see of loading ``data``: errors or the loaded config."""
    out: list[Any] = []
    try:
        config = BackpackConfig.from_dict(data, environ=environ)
    except ConfigError as exc:
        out += [exc, exc.problems]
    else:
        out += [config, f"{config}", config.model_dump(), config.model_dump(mode="json"), config.model_dump_json()]
        out += [config.signer(), config.model_copy()]
    try:
        BackpackConfig.model_validate(data, context=None if environ is None else {"environ": environ})
    except ValidationError as exc:
        out += [exc, exc.errors(), exc.json(), format_errors(exc)]
    return out


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records] + [caplog.text]


@pytest.mark.parametrize("field", CONFIG_FIELDS)
@SETTINGS
@given(seed=seeds, paste=pastes)
def test_seed_in_any_config_field_is_never_echoed(
    field: str, seed: str, paste: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever field a seed is pasted into, neither errors, repr, str, model_dump nor logs contain it."""
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    pasted = PASTES[paste](seed)
    texts = config_renderings({field: pasted})
    yaml_text = f"backpack:\n  {field}: {json.dumps(pasted)}\n"  # a JSON string is a YAML scalar
    try:
        texts.append(BackpackConfig.from_yaml(yaml_text))
    except ConfigError as exc:
        texts.append(exc)
    assert_absent(pasted.strip(), texts + log_texts(caplog))


@SETTINGS
@given(seed=seeds, paste=pastes)
def test_seed_as_a_setting_name_is_never_echoed(seed: str, paste: int, caplog: pytest.LogCaptureFixture) -> None:
    """A seed pasted as a YAML key (``<seed>: x``) is not printed as the error's location."""
    caplog.clear()
    pasted = PASTES[paste](seed).strip()
    texts = config_renderings({pasted: "x"})
    assert any("unknown setting" in str(t) for t in texts)
    assert_absent(pasted, texts + log_texts(caplog))


@SETTINGS
@given(seed=seeds, other=seeds, paste=pastes)
def test_seed_as_api_key_next_to_a_private_key_is_never_echoed(seed: str, other: str, paste: int) -> None:
    """A seed pasted as api_key next to another private key is refused without showing either."""
    pasted = PASTES[paste](seed)
    for secret_field in ("private_key", "key_secret"):
        texts = config_renderings({"api_key": pasted, secret_field: other})
        assert any(isinstance(t, ConfigError) for t in texts)  # a mismatch, or not valid base64 when unpadded
        assert_absent(pasted.strip(), texts)
        assert_absent(other, texts)


@SETTINGS
@given(seed=seeds, paste=pastes)
def test_seed_in_environment_sources_is_never_echoed(seed: str, paste: int, tmp_path_factory: Any) -> None:
    """The env override and a secret file with a bad seed are reported without their content."""
    pasted = PASTES[paste](seed)
    assert_absent(pasted.strip(), config_renderings({}, environ={NATIVE_ENV: pasted}))
    # private_key_env naming a variable that holds something other than a seed of 32 bytes
    bad = pasted.strip() + "AAAA"
    assert_absent(bad, config_renderings({"private_key_env": "BP_SEED"}, environ={"BP_SEED": bad}))
    path = tmp_path_factory.mktemp("seed") / "seed"
    path.write_text(bad)
    assert_absent(bad, config_renderings({"private_key_file": str(path)}))


@pytest.mark.parametrize("field", sorted(URL_FIELDS))
@SETTINGS
@given(seed=seeds, paste=pastes)
def test_url_password_is_masked_but_reaches_the_transport(
    field: str, seed: str, paste: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A URL's password appears nowhere but in the attribute the transport reads."""
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    password = PASTES[paste](seed).strip()
    encoded = quote(password, safe="")
    url = URL_FIELDS[field].format(userinfo=f"user:{encoded}@")
    config = BackpackConfig.from_dict({field: url})
    assert getattr(config, field) == url  # the real value, for the transport
    texts: list[Any] = [config, f"{config}", config.model_dump(), config.model_dump(mode="json")]
    texts += [config.model_dump_json()]
    assert config.model_dump()[field] == config.model_dump(mode="json")[field] == mask_url(url)
    assert "user:***@" in config.model_dump()[field]
    # the same URL made invalid (a bad port) is reported masked too
    broken = url.replace("@", "@[", 1) if field.endswith("url") else url + ":bad"
    texts += config_renderings({field: broken})
    if field.endswith("proxy"):
        texts.append(with_http_proxy(BackpackConfig(), url))
        with contextlib.suppress(ConfigError):
            texts.append(with_http_proxy(BackpackConfig(), broken))
    for needle in {password, encoded}:
        assert_absent(needle, texts + log_texts(caplog))


@SETTINGS
@given(seed=seeds, paste=pastes)
def test_seed_as_http_proxy_argument_is_never_echoed(seed: str, paste: int) -> None:
    """cryptofeed's ``http_proxy`` given a seed is refused without repeating it."""
    pasted = PASTES[paste](seed)
    with pytest.raises(ConfigError) as info:
        with_http_proxy(BackpackConfig(), pasted)
    assert HIDDEN in str(info.value)
    assert_absent(pasted.strip(), [info.value, info.value.problems])


@SETTINGS
@given(seed=seeds, paste=pastes)
def test_read_secret_never_names_a_source_that_is_a_seed(seed: str, paste: int) -> None:
    """``read_secret`` given the seed instead of a variable name or a path says so without showing it."""
    pasted = PASTES[paste](seed)
    # The text as given: a Path folds "//" (which seeds contain) before read_secret could recognise it,
    # so the CLI and the config hand read_secret the raw text or vet it first.
    for kwargs in ({"env": pasted}, {"file": pasted}):
        with pytest.raises(SecretSourceError) as info:
            read_secret(**kwargs, environ={})
        assert info.value.misplaced and "not the seed itself" in str(info.value)
        assert_absent(pasted.strip(), [info.value])


# -- the CLI -------------------------------------------------------------------------------------

CLI_SEED = b64(bytes(SigningKey(b"\x07" * 32)))  # the variable that --secret-env names in valid runs
CLOSED = "http://127.0.0.1:9"  # nothing listens: a run that got as far as the network fails at once

SIGN = ["sign", "--instruction", "balanceQuery", "--timestamp", "1700000000000", "--secret-env", "BP_CLI_SEED"]
AUTH = ["auth-check", "--secret-env", "BP_CLI_SEED", "--rest", CLOSED, "--timeout", "2"]


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced (or the flag added); mutually exclusive sources swapped."""
    out = list(argv)
    if flag == "--secret-file" and "--secret-env" in out:
        i = out.index("--secret-env")
        del out[i : i + 2]
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


CLI_CASES = (
    [("sign", f) for f in ("--instruction", "--param", "--timestamp", "--window", "--secret-env", "--secret-file",
                           "--api-key", "positional")]
    + [("auth-check", f) for f in ("--secret-env", "--secret-file", "--api-key", "--rest", "--window",
                                   "--timeout", "positional")]
    + [("demo", f) for f in ("--seed", "--steps", "positional")]
    + [("serve", f) for f in ("--port", "--seed", "--rate", "--ping-interval", "--pong-timeout", "positional")]
)


def _argv(command: str, flag: str, value: str) -> list[str]:
    base = {"sign": SIGN, "auth-check": AUTH, "demo": ["demo"], "serve": ["serve"]}[command]
    if flag == "positional":
        return [*base, value]
    return _replace(base, flag, value)


@pytest.mark.parametrize(("command", "flag"), CLI_CASES, ids=[f"{c} {f}" for c, f in CLI_CASES])
@SETTINGS
@given(seed=seeds, paste=pastes)
def test_seed_in_any_cli_flag_is_never_echoed(
    command: str, flag: str, seed: str, paste: int, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever flag a seed is typed into, the command fails without printing or logging it."""
    caplog.clear()
    monkeypatch.setenv("BP_CLI_SEED", CLI_SEED)
    pasted = PASTES[paste](seed)
    argv = _argv(command, flag, pasted)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code != 0, (argv, out.getvalue())
    assert "Traceback" not in err.getvalue()
    assert_absent(pasted.strip(), [out.getvalue(), err.getvalue(), *log_texts(caplog)])
    assert CLI_SEED not in out.getvalue() + err.getvalue()


# -- the recogniser itself -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(min_size=32, max_size=32), paste=pastes)
def test_every_seed_spelling_is_recognised_and_scrubbed(raw: bytes, paste: int) -> None:
    """Any 32-byte key, in std/urlsafe base64 or hex and however pasted, is recognised and scrubbed from text."""
    for spelling in (b64(raw), base64.urlsafe_b64encode(raw).decode(), raw.hex()):
        pasted = PASTES[paste](spelling)
        assert looks_like_key(pasted)
        assert pasted.strip() not in scrub(f"argument --x: invalid int value: {pasted!r}")


@pytest.mark.parametrize(
    "ordinary",
    ["BP_SEED_TEST", "BACKPACK_SECRET_2", "/run/secrets/backpack-seed", "/home/User/keys/Backpack2024.txt",
     "https://api.backpack.exchange", "wss://ws.backpack.exchange", "SOL_USDC_PERP", "orderExecute", "60000",
     "1700000000000", "test_private_key_file_problems0", "breaker_reset_seconds"],
)
def test_ordinary_values_are_still_shown(ordinary: str) -> None:
    assert not looks_like_key(ordinary) and scrub(ordinary) == ordinary


# -- URL passwords in the transport's reprs, logs and errors -------------------------------------


async def test_url_passwords_never_reach_transport_reprs_logs_or_errors(
    origin: int, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    """The live transport connects with the URL's credentials but shows them nowhere."""
    caplog.set_level(logging.DEBUG)
    secret = "Hunter2Hunter2"
    transport = LiveTransport()
    try:
        session = await transport.connect(f"ws://user:{secret}@127.0.0.1:{origin}/ws", timeout=GUARD)
        texts: list[Any] = [session, transport]
        await session.close()
        rest = RestClient(transport, f"http://user:{secret}@127.0.0.1:{origin}", retries=0)
        assert (await rest.status())["status"] == "Ok"
        texts.append(rest)
        dead = free_port()
        with pytest.raises(TransportError) as rest_err:
            await RestClient(transport, f"http://user:{secret}@127.0.0.1:{dead}", retries=0).status()
        manager = WsSessionManager(
            transport, f"ws://user:{secret}@127.0.0.1:{dead}/ws", ["trade.SOL_USDC"], _ignore, max_reconnects=1,
            backoff_base=0.01, backoff_max=0.01,
        )
        with pytest.raises(TransportError) as ws_err:
            await manager.run(asyncio.Event())
        texts += [rest_err.value, ws_err.value, *log_texts(caplog)]
        assert any("connect to ws://user:***@127.0.0.1" in t for t in log_texts(caplog))
    finally:
        await transport.close()
    assert_absent(secret, texts)


async def _ignore(*_: Any) -> None:
    return None


@pytest.mark.parametrize("flag", ["--secret-file", "--secret-env"])
def test_a_seed_with_a_double_slash_is_recognised_before_any_path_handling(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = "AAAAAAAAAAAAAAAAA//AAAAAAAAAAAAAAAAAAAAAAAA="  # Path() would make it "...A/A..."
    code = main(["sign", "--instruction", "x", "--timestamp", "1", flag, seed])
    err = capsys.readouterr().err
    assert code == 2 and HIDDEN in err
    assert_absent(seed, [err])
    assert_absent(seed, config_renderings({"private_key_file": seed}))


def test_cli_says_what_is_wrong_with_a_misplaced_seed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BP_CLI_SEED", CLI_SEED)
    seed = b64(bytes(SigningKey(b"\x09" * 32)))
    code = main(["auth-check", "--secret-env", seed, "--rest", CLOSED])
    err = capsys.readouterr().err
    assert code == 2 and "the NAME of an environment variable" in err and HIDDEN in err and seed not in err
    code = main(["sign", "--instruction", "x", "--timestamp", "1", "--secret-file", seed])
    err = capsys.readouterr().err
    assert code == 2 and "the PATH of a file" in err and seed not in err
    code = main(["auth-check", "--secret-env", "BP_CLI_SEED", "--rest", "http://u:Hunter2Hunter2@127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 64 and "must not carry user:password@" in err and "u:***@127.0.0.1:9" in err
    assert "Hunter2" not in err
