"""``backpack-harness sign``: output equals the Signer's, matches a fixed RFC 8032 key vector, verifies."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.signing import SigningKey, VerifyKey

from backpack.protocol.auth import Signer, signing_string
from harness.cli import EXIT_KEY, EXIT_OK, EXIT_USAGE, main

# RFC 8032 section 7.1, TEST 1 (a public test vector, not a real credential).
RFC_SEED_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC_PUB_HEX = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC_EMPTY_MSG_SIG_HEX = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# ED25519 is deterministic: this signature of KNOWN_TEXT under the RFC key never changes.
KNOWN_TEXT = (
    "instruction=orderExecute&orderType=Limit&postOnly=true&price=100.5&quantity=1&side=Bid&symbol=SOL_USDC"
    "&timestamp=1700000000000&window=5000"
)
KNOWN_SIG = "0/UogjxJ0BLm2TyCd69SxDbMEzNd3ft8/xF8vVxvfi7/5iDMa7Md2mGG5dHCrCnyv/GeZ2RUVGVT10odfYmyDg=="
KNOWN_ARGS = [
    "sign", "--instruction", "orderExecute", "--timestamp", "1700000000000",
    "--param", "symbol=SOL_USDC", "--param", "side=Bid", "--param", "orderType=Limit",
    "--param", "price=100.5", "--param", "quantity=1", "--param", "postOnly=true",
]  # fmt: skip


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


RFC_SEED = b64(bytes.fromhex(RFC_SEED_HEX))
RFC_PUB = b64(bytes.fromhex(RFC_PUB_HEX))


@pytest.fixture
def seed_env(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    key = SigningKey.generate()
    seed = b64(bytes(key))
    monkeypatch.setenv("BP_TEST_SEED", seed)
    return seed, b64(bytes(key.verify_key))


def run(argv: list[str], capsys: pytest.CaptureFixture[str], secret: str) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert secret not in out and secret not in err
    return code, out, err


def cli_command() -> list[str]:
    """The installed console script (on PATH or next to this interpreter), else ``python -m harness``."""
    beside = Path(sys.executable).with_name("backpack-harness")
    script = shutil.which("backpack-harness") or (str(beside) if beside.exists() else None)
    return [script] if script else [sys.executable, "-m", "harness"]


def test_rfc8032_vector_anchor() -> None:
    signer = Signer(RFC_SEED, RFC_PUB)
    assert signer.api_key == RFC_PUB
    assert base64.b64decode(signer.sign_text("")).hex() == RFC_EMPTY_MSG_SIG_HEX


def test_known_value(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BP_RFC_SEED", RFC_SEED)
    code, out, _ = run([*KNOWN_ARGS, "--secret-env", "BP_RFC_SEED", "--api-key", RFC_PUB], capsys, RFC_SEED)
    assert code == EXIT_OK
    doc = json.loads(out)
    assert doc == {
        "signing_string": KNOWN_TEXT,
        "signature": KNOWN_SIG,
        "x_api_key": RFC_PUB,
        "headers": {
            "X-API-Key": RFC_PUB,
            "X-Signature": KNOWN_SIG,
            "X-Timestamp": "1700000000000",
            "X-Window": "5000",
        },
    }
    VerifyKey(bytes.fromhex(RFC_PUB_HEX)).verify(KNOWN_TEXT.encode(), base64.b64decode(KNOWN_SIG))


def test_matches_signer_and_verifies(seed_env: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    seed, pub = seed_env
    argv = ["sign", "--instruction", "orderCancel", "--param", "symbol=BTC_USDC", "--param", "orderId=42",
            "--param", "note=a b&c=d", "--timestamp", "1712345678901", "--window", "60000", "--secret-env", "BP_TEST_SEED"]  # fmt: skip
    code, out, _ = run(argv, capsys, seed)
    assert code == EXIT_OK
    doc = json.loads(out)
    params = {"symbol": "BTC_USDC", "orderId": "42", "note": "a b&c=d"}
    expected = Signer(seed).sign("orderCancel", params, 1712345678901, 60000)
    assert doc["signing_string"] == signing_string("orderCancel", params, 1712345678901, 60000)
    assert doc["signing_string"] == expected.signing_string
    assert doc["signature"] == expected.signature and doc["x_api_key"] == pub
    assert doc["headers"] == expected.headers()
    VerifyKey(base64.b64decode(pub)).verify(doc["signing_string"].encode(), base64.b64decode(doc["signature"]))


def test_boolean_words_stay_strings(seed_env: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    seed, _ = seed_env
    argv = ["sign", "--instruction", "orderExecute", "--param", "postOnly=true", "--param", "reduceOnly=false",
            "--param", "x=True", "--timestamp", "1", "--secret-env", "BP_TEST_SEED"]  # fmt: skip
    code, out, _ = run(argv, capsys, seed)
    assert code == EXIT_OK
    assert json.loads(out)["signing_string"] == (
        "instruction=orderExecute&postOnly=true&reduceOnly=false&x=True&timestamp=1&window=5000"
    )


def test_no_params_and_empty_value(seed_env: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    seed, _ = seed_env
    code, out, _ = run(["sign", "--instruction", "balanceQuery", "--timestamp", "5", "--secret-env", "BP_TEST_SEED"],
                       capsys, seed)  # fmt: skip
    assert code == EXIT_OK and json.loads(out)["signing_string"] == "instruction=balanceQuery&timestamp=5&window=5000"
    code, out, _ = run(["sign", "--instruction", "q", "--param", "k=", "--param", "e=a=b", "--timestamp", "5",
                        "--secret-env", "BP_TEST_SEED"], capsys, seed)  # fmt: skip
    assert code == EXIT_OK and json.loads(out)["signing_string"] == "instruction=q&e=a=b&k=&timestamp=5&window=5000"


def test_secret_file_with_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "seed.txt"
    path.write_text(RFC_SEED + "\n")
    code, out, _ = run([*KNOWN_ARGS, "--secret-file", str(path)], capsys, RFC_SEED)
    assert code == EXIT_OK and json.loads(out)["signature"] == KNOWN_SIG


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--param", "a=1", "--param", "a=2"], "--param 'a' given more than once"),
        (["--param", "novalue"], "--param must look like key=value"),
        (["--param", "=v"], "--param must look like key=value"),
        (["--window", "0"], "window must be between 1 and 60000"),
        (["--window", "60001"], "window must be between 1 and 60000"),
        (["--timestamp", "-1"], "timestamp must not be negative"),
        (["--timestamp", "soon"], "timestamp must be an integer"),
    ],
)
def test_usage_errors(seed_env: tuple[str, str], capsys: pytest.CaptureFixture[str], extra: list[str], needle: str) -> None:
    seed, _ = seed_env
    argv = ["sign", "--instruction", "x", "--timestamp", "1", "--secret-env", "BP_TEST_SEED", *extra]
    code, out, err = run(argv, capsys, seed)
    assert code == EXIT_USAGE and out == "" and needle in err


def test_missing_secret_source_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", "--instruction", "x", "--timestamp", "1"]) == EXIT_USAGE
    assert "--secret-env" in capsys.readouterr().err


def test_key_errors(seed_env: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seed, _ = seed_env
    base = ["sign", "--instruction", "x", "--timestamp", "1"]
    other = b64(bytes(SigningKey.generate().verify_key))
    code, out, err = run([*base, "--secret-env", "BP_TEST_SEED", "--api-key", other], capsys, seed)
    assert code == EXIT_KEY and out == "" and "does not belong to this private key" in err
    monkeypatch.setenv("BP_BAD_SEED", seed[:-6])
    code, out, err = run([*base, "--secret-env", "BP_BAD_SEED"], capsys, seed[:-6])
    assert code == EXIT_KEY and "regenerate the key pair" in err
    monkeypatch.delenv("BP_ABSENT", raising=False)
    code, _, err = run([*base, "--secret-env", "BP_ABSENT"], capsys, seed)
    assert code == EXIT_KEY and "BP_ABSENT is not set" in err


def test_console_script_subprocess(seed_env: tuple[str, str], tmp_path: Path) -> None:
    seed, pub = seed_env
    env = {**os.environ, "BP_TEST_SEED": seed}
    argv = ["sign", "--instruction", "orderExecute", "--param", "postOnly=true", "--timestamp", "99",
            "--secret-env", "BP_TEST_SEED"]  # fmt: skip
    proc = subprocess.run([*cli_command(), *argv], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert seed not in proc.stdout and seed not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["x_api_key"] == pub
    assert doc["signature"] == Signer(seed).sign("orderExecute", {"postOnly": "true"}, 99).signature


def test_python_dash_m_harness(seed_env: tuple[str, str]) -> None:
    seed, _ = seed_env
    env = {**os.environ, "BP_TEST_SEED": seed}
    argv = [sys.executable, "-m", "harness", "sign", "--instruction", "x", "--param", "a=1", "--param", "a=1",
            "--timestamp", "1", "--secret-env", "BP_TEST_SEED"]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_USAGE and "given more than once" in proc.stderr
    assert seed not in proc.stdout + proc.stderr
