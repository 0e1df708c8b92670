"""ED25519 signing: RFC 8032 vectors, signing strings, secrecy, and a cross-check against ccxt.

ccxt signs with the ``cryptography`` package and PyNaCl (used here) wraps libsodium: two independent
ED25519 implementations, so equal signatures over the same text mean equal signing strings.
"""

from __future__ import annotations

import base64
import random
import string
from urllib.parse import quote

import pytest

from backpack.protocol.auth import (
    KeyMaterialError,
    SignedRequest,
    Signer,
    batch_signing_string,
    decode_key,
    public_key_of,
    signing_string,
    verify,
)

# --- RFC 8032 section 7.1 test vectors ------------------------------------------------------------

_MSG_1024 = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
    "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
    "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
    "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
    "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
    "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
    "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
    "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
    "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
    "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
    "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
    "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
    "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
    "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
    "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
    "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
    "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
    "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
    "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
    "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0"
)

# (name, secret key = seed, public key, message, signature), all hex
RFC8032 = [
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        _MSG_1024,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]


def b64(hex_: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_)).decode()


def test_vector_messages_are_the_published_ones() -> None:
    import hashlib

    assert len(bytes.fromhex(_MSG_1024)) == 1023
    assert bytes.fromhex(RFC8032[4][3]) == hashlib.sha512(b"abc").digest()


@pytest.mark.parametrize(("name", "seed", "pk", "msg", "sig"), RFC8032, ids=[v[0] for v in RFC8032])
def test_rfc8032_public_key_and_signature(name: str, seed: str, pk: str, msg: str, sig: str) -> None:
    signer = Signer(b64(seed), api_key=b64(pk))  # the pair check passes only for the right public key
    assert signer.api_key == b64(pk) == public_key_of(b64(seed))
    raw = bytes.fromhex(msg)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        # sign_text takes text (signing strings are ASCII); TEST 3, 1024 and SHA(abc) are not UTF-8,
        # so they go through the very key object sign_text uses.
        assert signer._key.sign(raw).signature == bytes.fromhex(sig)
    else:
        assert signer.sign_text(text) == b64(sig)
        assert verify(signer.api_key, text, b64(sig))
        assert not verify(signer.api_key, text + " ", b64(sig))


def test_rfc8032_text_vectors_really_go_through_sign_text() -> None:
    decodable = [v for v in RFC8032 if v[0] in ("TEST 1", "TEST 2")]
    assert [bytes.fromhex(v[3]).decode() for v in decodable] == ["", "r"]


# --- signing strings --------------------------------------------------------------------------------

TS = 1614550000000


def test_doc_example_order_cancel() -> None:
    text = signing_string("orderCancel", {"symbol": "BTC_USDT", "orderId": 28}, TS)
    assert text == "instruction=orderCancel&orderId=28&symbol=BTC_USDT&timestamp=1614550000000&window=5000"


def test_doc_example_batch() -> None:
    orders = [
        {"symbol": "SOL_USDC_PERP", "side": "Bid", "orderType": "Limit", "price": "141", "quantity": "12"},
        {"symbol": "SOL_USDC_PERP", "side": "Bid", "orderType": "Limit", "price": "140", "quantity": "11"},
    ]
    assert batch_signing_string("orderExecute", orders, 1750793021519) == (
        "instruction=orderExecute&orderType=Limit&price=141&quantity=12&side=Bid&symbol=SOL_USDC_PERP"
        "&instruction=orderExecute&orderType=Limit&price=140&quantity=11&side=Bid&symbol=SOL_USDC_PERP"
        "&timestamp=1750793021519&window=5000"
    )


def test_no_params_and_empty_params() -> None:
    expected = "instruction=balanceQuery&timestamp=1614550000000&window=5000"
    assert signing_string("balanceQuery", None, TS) == expected
    assert signing_string("balanceQuery", {}, TS) == expected
    assert (
        signing_string("subscribe", None, TS, 60000)
        == "instruction=subscribe&timestamp=1614550000000&window=60000"
    )


def test_sorted_keys_booleans_and_none() -> None:
    params = {
        "symbol": "SOL_USDC",
        "postOnly": True,
        "reduceOnly": False,
        "clientId": None,
        "Zed": "1",
        "a": 2,
    }
    # byte order: upper case sorts before lower case; None means "absent"
    assert signing_string("orderExecute", params, TS, 7000) == (
        "instruction=orderExecute&Zed=1&a=2&postOnly=true&reduceOnly=false&symbol=SOL_USDC&timestamp=1614550000000&window=7000"
    )


def test_values_are_signed_raw() -> None:
    text = signing_string("withdraw", {"address": "a b&c=d/e+f"}, TS)
    assert "address=a b&c=d/e+f&" in text


def test_sign_returns_verifiable_request_and_headers() -> None:
    signer = Signer(b64(RFC8032[0][1]))
    req = signer.sign("orderCancel", {"symbol": "BTC_USDT", "orderId": 28}, TS, 6000)
    assert req.signing_string == signing_string(
        "orderCancel", {"symbol": "BTC_USDT", "orderId": 28}, TS, 6000
    )
    assert verify(signer.api_key, req.signing_string, req.signature)
    assert len(base64.b64decode(req.signature)) == 64
    assert req.headers() == {
        "X-API-Key": signer.api_key,
        "X-Signature": req.signature,
        "X-Timestamp": "1614550000000",
        "X-Window": "6000",
    }
    batch = signer.sign_batch("orderExecute", [{"a": 1}, {"b": 2}], TS)
    assert (
        batch.signing_string
        == "instruction=orderExecute&a=1&instruction=orderExecute&b=2&timestamp=1614550000000&window=5000"
    )
    assert verify(signer.api_key, batch.signing_string, batch.signature)


def test_ws_signature_array() -> None:
    signer = Signer(b64(RFC8032[1][1]))
    key, sig, ts, window = signer.ws_signature(TS, 5000)
    assert (key, ts, window) == (signer.api_key, "1614550000000", "5000")
    assert verify(key, "instruction=subscribe&timestamp=1614550000000&window=5000", sig)


def test_verify_is_false_on_malformed_input() -> None:
    signer = Signer(b64(RFC8032[0][1]))
    sig = signer.sign_text("x")
    assert verify(signer.api_key, "x", sig)
    assert not verify("not base64!", "x", sig)
    assert not verify(signer.api_key, "x", "not base64!")
    assert not verify(signer.api_key, "x", base64.b64encode(b"short").decode())
    assert not verify(Signer(b64(RFC8032[1][1])).api_key, "x", sig)


# --- secrecy -----------------------------------------------------------------------------------------


def _secret_forms(seed_hex: str) -> list[str]:
    raw = bytes.fromhex(seed_hex)
    return [seed_hex, base64.b64encode(raw).decode(), repr(raw), raw.hex().upper()]


def test_reprs_never_show_seed_or_signature() -> None:
    seed = RFC8032[2][1]
    signer = Signer(b64(seed))
    req = signer.sign("orderCancel", {"orderId": 1}, TS)
    shown = [repr(signer), str(signer), repr(req), str(req), f"{signer!r} {req}"]
    for text in shown:
        for secret in [*_secret_forms(seed), req.signature]:
            assert secret not in text
    assert signer.api_key in repr(signer)  # the public key is fine to show
    assert isinstance(req, SignedRequest)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "private key is empty"),
        ("   ", "private key is empty"),
        ("nöt/base64$$", "private key is not valid base64"),
        ("c2VjcmV0LXRoYXQtaXMtdG9vLXNob3J0", "private key must decode to 32 bytes, got 24"),
        # ccxt's fixture style: 64 bytes (seed + something); we want exactly the 32-byte seed
        (base64.b64encode(bytes(range(64))).decode(), "private key must decode to 32 bytes, got 64"),
    ],
)
def test_key_errors_never_contain_the_secret(secret: str, message: str) -> None:
    with pytest.raises(KeyMaterialError) as exc:
        Signer(secret)
    assert str(exc.value) == message
    if secret.strip():
        assert secret.strip() not in str(exc.value)
        assert secret.strip() not in repr(exc.value)
    assert exc.value.__cause__ is None


def test_mismatched_pair_error_never_contains_either_key() -> None:
    seed = b64(RFC8032[0][1])
    other_pk = b64(RFC8032[1][2])
    with pytest.raises(KeyMaterialError, match="does not match") as exc:
        Signer(seed, api_key=other_pk)
    for secret in [*_secret_forms(RFC8032[0][1]), other_pk, b64(RFC8032[0][2])]:
        assert secret not in str(exc.value)


def test_bad_api_key_error_names_the_api_key_not_its_value() -> None:
    with pytest.raises(KeyMaterialError, match="API key is not valid base64") as exc:
        Signer(b64(RFC8032[0][1]), api_key="zz!!")
    assert "zz!!" not in str(exc.value)
    with pytest.raises(KeyMaterialError, match="API key must decode to 32 bytes"):
        decode_key(base64.b64encode(b"x" * 31).decode(), "API key")


def test_base64_error_does_not_chain_the_decoder_exception() -> None:
    """A chained binascii error could print part of the input in a traceback."""
    with pytest.raises(KeyMaterialError) as exc:
        decode_key("abc$", "private key")
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


# --- cross-check with ccxt ---------------------------------------------------------------------------

CCXT_TS = 1_700_000_000_123
_SAFE = string.ascii_letters + string.digits + "-._"
_KEYS = [
    "symbol",
    "orderId",
    "limit",
    "offset",
    "side",
    "price",
    "quantity",
    "postOnly",
    "reduceOnly",
    "clientId",
    "from",
    "to",
    "timeInForce",
    "orderType",
    "marketType",
    "blockchain",
    "quoteQuantity",
    "autoBorrow",
]
_CCXT_OMITS = {"stock", "defaultStock", "rfq", "callerMethodName"}  # ccxt drops these before signing


def _ccxt(signer: Signer, seed_b64: str, window: int | None = None):  # noqa: ANN202 - ccxt has no stubs
    import ccxt

    ex = ccxt.backpack({"apiKey": signer.api_key, "secret": seed_b64})
    ex.nonce = lambda: CCXT_TS  # no clock, no network: sign() only builds the request
    if window is not None:
        ex.options["recvWindow"] = str(window)
    return ex


def _ccxt_routes() -> list[tuple[str, str, str]]:
    import ccxt

    table = ccxt.backpack().options["instructions"]
    return [
        (path, method, instr)
        for path, methods in sorted(table.items())
        for method, instr in sorted(methods.items())
    ]


def _value(rng: random.Random) -> object:
    kind = rng.randrange(5)
    if kind == 0:
        return "".join(rng.choice(_SAFE) for _ in range(rng.randint(1, 12)))
    if kind == 1:
        return rng.randint(0, 10**15)
    if kind == 2:  # Decimal-like string
        return f"{rng.randint(0, 99999)}.{rng.randint(0, 10**8):0{rng.randint(1, 8)}d}"
    if kind == 3:
        return rng.choice([True, False])
    return rng.choice(
        ["Bid", "Ask", "Limit", "Market", "IOC", "GTC", "SOL_USDC", "AAPL.US_USDC_PERP", "kSHIB_USDC_PERP"]
    )


def _cases(n: int, seed: int) -> list[tuple[str, str, str, dict, int | None]]:
    rng = random.Random(seed)
    routes = [r for r in _ccxt_routes() if r[:2] != ("api/v1/orders", "POST")]
    cases = []
    for i in range(n):
        path, method, instr = routes[i % len(routes)] if i < len(routes) else rng.choice(routes)
        keys = rng.sample(_KEYS, rng.randint(0, 6))
        cases.append(
            (path, method, instr, {k: _value(rng) for k in keys}, rng.choice([None, 5000, 10000, 60000]))
        )
    return cases


def test_ccxt_instruction_table_is_used() -> None:
    routes = _ccxt_routes()
    assert ("api/v1/order", "DELETE", "orderCancel") in routes
    assert ("api/v1/capital", "GET", "balanceQuery") in routes
    assert len(routes) >= 20


@pytest.mark.parametrize(("path", "method", "instruction", "params", "window"), _cases(60, seed=8032))
def test_signature_equals_ccxt(
    path: str, method: str, instruction: str, params: dict, window: int | None
) -> None:
    seed = b64(RFC8032[4][1])
    signer = Signer(seed)
    assert not _CCXT_OMITS & set(params)
    theirs = _ccxt(signer, seed, window).sign(path, ["private"], method, dict(params))["headers"]
    ours = signer.sign(instruction, params, CCXT_TS, window or 5000)
    assert theirs["X-Signature"] == ours.signature, ours.signing_string
    for header in ("X-API-Key", "X-Timestamp", "X-Window"):
        assert theirs[header] == ours.headers()[header]


@pytest.mark.parametrize("seed_n", range(5))
def test_batch_signature_equals_ccxt(seed_n: int) -> None:
    rng = random.Random(seed_n)
    orders = [
        {k: _value(rng) for k in rng.sample(_KEYS, rng.randint(1, 6))} for _ in range(rng.randint(1, 4))
    ]
    seed = b64(RFC8032[3][1])
    signer = Signer(seed)
    theirs = _ccxt(signer, seed).sign("api/v1/orders", ["private"], "POST", [dict(o) for o in orders])[
        "headers"
    ]
    assert theirs["X-Signature"] == signer.sign_batch("orderExecute", orders, CCXT_TS).signature


def test_ccxt_renders_booleans_like_the_exchange() -> None:
    import ccxt

    assert ccxt.backpack().urlencode({"a": True, "b": False}) == "a=true&b=false"
    assert signing_string("x", {"a": True, "b": False}, 1).startswith("instruction=x&a=true&b=false&")


@pytest.mark.parametrize("reserved", ["&", "=", " ", "/", "+"])
def test_known_difference_reserved_characters(reserved: str) -> None:
    """ccxt percent-encodes values; the exchange (and we) sign them raw. Known ccxt deviation 7."""
    seed = b64(RFC8032[0][1])
    signer = Signer(seed)
    params = {"address": f"ab{reserved}cd", "symbol": "SOL_USDC"}
    ex = _ccxt(signer, seed)
    theirs = ex.sign("wapi/v1/capital/withdrawals", ["private"], "POST", dict(params))["headers"][
        "X-Signature"
    ]
    ours = signer.sign("withdraw", params, CCXT_TS)
    raw = f"instruction=withdraw&address=ab{reserved}cd&symbol=SOL_USDC&timestamp={CCXT_TS}&window=5000"
    encoded = f"instruction=withdraw&address=ab{quote(reserved, safe='')}cd&symbol=SOL_USDC&timestamp={CCXT_TS}&window=5000"
    assert ours.signing_string == raw  # the exchange's raw k=v rule
    assert encoded != raw
    assert verify(signer.api_key, encoded, theirs)  # ccxt signed the percent-encoded text...
    assert not verify(signer.api_key, raw, theirs)  # ...not the raw one
    assert theirs != ours.signature


def test_known_difference_none_values() -> None:
    """ccxt writes a None value as the text 'None'; we leave the key out (None means absent)."""
    seed = b64(RFC8032[0][1])
    signer = Signer(seed)
    theirs = _ccxt(signer, seed).sign("api/v1/orders", ["private"], "GET", {"symbol": "SOL_USDC", "x": None})
    assert verify(
        signer.api_key,
        f"instruction=orderQueryAll&symbol=SOL_USDC&x=None&timestamp={CCXT_TS}&window=5000",
        theirs["headers"]["X-Signature"],
    )
    assert signer.sign("orderQueryAll", {"symbol": "SOL_USDC", "x": None}, CCXT_TS).signing_string == (
        f"instruction=orderQueryAll&symbol=SOL_USDC&timestamp={CCXT_TS}&window=5000"
    )


def test_api_key_with_non_canonical_base64_padding_bits_is_accepted() -> None:
    """base64 ignores the unused low bits of the last character: the same key, spelled differently."""
    seed, pk = b64(RFC8032[0][1]), b64(RFC8032[0][2])
    last = pk[-2]
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    alt = pk[:-2] + alphabet[alphabet.index(last) + 1] + "="
    assert alt != pk and base64.b64decode(alt, validate=True) == base64.b64decode(pk)
    signer = Signer(seed, api_key=alt)
    assert signer.api_key == pk  # canonical form in headers and frames
