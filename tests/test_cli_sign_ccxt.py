"""``backpack-harness sign`` gives ccxt's signature for the same inputs (plain values)."""

from __future__ import annotations

import base64
import json
import random

import ccxt
import pytest
from nacl.signing import SigningKey

from harness.cli import main

TS = 1_700_000_000_123


def _routes() -> list[tuple[str, str, str]]:
    """Single-request routes; POST api/v1/orders is ccxt's batch endpoint, a different signing shape."""
    table = ccxt.backpack().options["instructions"]
    return [(path, method, instr) for path, methods in sorted(table.items()) for method, instr in sorted(methods.items())
            if (path, method) != ("api/v1/orders", "POST")]


def _params(rng: random.Random) -> dict[str, str]:
    keys = rng.sample(["symbol", "side", "price", "quantity", "limit", "orderType", "timeInForce", "postOnly", "clientId"],
                      rng.randint(0, 5))
    values = {"postOnly": rng.choice(["true", "false"]), "clientId": str(rng.randint(1, 10**9)),
              "price": f"{rng.randint(1, 99999)}.{rng.randint(0, 99)}", "limit": str(rng.randint(1, 1000))}
    return {k: values.get(k, rng.choice(["SOL_USDC", "Bid", "Ask", "Limit", "GTC", "0.5"])) for k in keys}


@pytest.mark.parametrize("case", range(24))
def test_cli_signature_equals_ccxt(case: int, monkeypatch, capsys) -> None:
    rng = random.Random(case)
    seed = base64.b64encode(bytes(SigningKey.generate())).decode()
    monkeypatch.setenv("BP_TEST_SECRET", seed)
    path, method, instruction = rng.choice(_routes())
    params = _params(rng)
    window = rng.choice([5000, 10000, 60000])

    argv = ["sign", "--instruction", instruction, "--timestamp", str(TS), "--window", str(window),
            "--secret-env", "BP_TEST_SECRET"]
    for k, v in params.items():
        argv += ["--param", f"{k}={v}"]
    assert main(argv) == 0
    ours = json.loads(capsys.readouterr().out)

    ex = ccxt.backpack({"apiKey": ours["x_api_key"], "secret": seed})
    ex.nonce = lambda: TS  # no clock and no network: sign() only builds the request
    ex.options["recvWindow"] = str(window)
    theirs = ex.sign(path, ["private"], method, dict(params))["headers"]
    assert ours["signature"] == theirs["X-Signature"]
    assert ours["x_api_key"] == theirs["X-API-Key"]
    assert seed not in json.dumps(ours)
