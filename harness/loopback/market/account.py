"""The loopback server's one private test account: orders and fills, positions, balances, RFQs.

It trades on the public market it belongs to (a fill is also a public trade on that market's tape), so
it holds a reference to the ``MarketGenerator`` and reads its symbols and clock; its own random choices
come from RNGs of its own, so the public market's seeded output does not depend on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from harness.loopback.market.wire import Emission, canon

if TYPE_CHECKING:
    from harness.loopback.market.generator import MarketGenerator, _Symbol

_MARK_Q = Decimal("0.00000001")
_FEE_RATE = Decimal("0.0002")


@dataclass(slots=True)
class _Order:
    id: str
    symbol: str
    side: str  # "Bid" | "Ask"
    price_ticks: int
    units: int
    client_id: int | None
    post_only: bool
    filled_units: int = 0
    filled_quote: Decimal = Decimal(0)
    trigger_ticks: int | None = None  # a trigger (stop) order: its trigger price
    pending: bool = False  # a trigger order not yet triggered: q is "0", the size is in Y


@dataclass(slots=True)
class _Rfq:
    id: int
    market: _Symbol  # the spot market it prices
    units: int
    side: str  # "Bid" | "Ask"
    own: bool  # this account requested it (else: a broadcast to makers, answered with our quote)
    client_id: str
    quote_id: int | None = None


@dataclass(slots=True)
class _Position:
    id: int
    units: int = 0  # signed net quantity in step units
    entry: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


class Account:
    def __init__(self, market: MarketGenerator) -> None:
        from harness.loopback.market.generator import rng_for

        self.m = market
        cfg = market.config
        self._prv = rng_for(cfg.seed, "private-account")
        self._next_order_id = self._prv.randint(10**9, 9 * 10**9)
        self._next_position_id = self._prv.randint(10**9, 9 * 10**9)
        self.orders: dict[str, _Order] = {}
        self._rfq_rng = rng_for(cfg.seed, "rfq")  # its own stream: adding RFQs changed no other seeded output
        self._next_rfq_id = self._rfq_rng.randint(10**17, 2 * 10**17)
        self.rfqs: dict[int, _Rfq] = {}
        self._trigger_rng = rng_for(cfg.seed, "trigger")  # own stream, like RFQs
        self._next_trigger_id = self._trigger_rng.randint(10**15, 9 * 10**15)
        self.triggers: dict[str, _Order] = {}  # placed, waiting for their trigger price
        self.positions: dict[str, _Position] = {}
        self.balances: dict[str, Decimal] = {"USDC": Decimal("100000")}
        for spec in cfg.markets:
            if not spec.perp:
                self.balances.setdefault(spec.base, Decimal("100"))
        first_perp = next((s for s in market._syms.values() if s.spec.perp), None)
        if first_perp is not None:  # an open position so the subscribe-time snapshot is not empty
            units = max(1, first_perp.spec.max_units // 20)
            self.positions[first_perp.spec.symbol] = _Position(
                self._new_position_id(), units, first_perp.spec.start_price
            )

    def step(self, out: list[Emission]) -> None:
        self._private(out)
        self._rfq(out)
        self._trigger(out)

    def _trigger(self, out: list[Emission]) -> None:
        """Trigger orders: ``triggerPlaced`` (q "0", size in Y), then triggered into a resting order (an
        ``orderAccepted`` with the size in q, filled later like any order) or ``triggerFailed``."""
        rng = self._trigger_rng
        if rng.random() >= self.m.config.p_trigger:
            return
        if not self.triggers or (len(self.triggers) < 2 and rng.random() < 0.5):
            st = self.m._syms[sorted(self.m._syms)[rng.randrange(len(self.m._syms))]]
            bid = rng.random() < 0.5
            mid = st.mid_ticks()
            self._next_trigger_id += rng.randint(1, 1000)
            order = _Order(
                id=str(self._next_trigger_id), symbol=st.spec.symbol, side="Bid" if bid else "Ask",
                price_ticks=max(1, mid + (2 if bid else -2)), units=rng.randint(1, max(1, st.spec.max_units // 20)),
                client_id=None, post_only=False, trigger_ticks=max(1, mid + (1 if bid else -1)), pending=True,
            )
            self.triggers[order.id] = order
            self._emit_order(order, "triggerPlaced", "TriggerPending", out)
            return
        order = self.triggers.pop(sorted(self.triggers)[rng.randrange(len(self.triggers))])
        if rng.random() < 0.8:
            order.pending = False
            self.orders[order.id] = order
            self._emit_order(order, "orderAccepted", "New", out)
        else:
            self._emit_order(order, "triggerFailed", "TriggerFailed", out)

    def positions_snapshot(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Open positions as sent on ``account.positionUpdate`` subscribe: no ``e`` field."""
        out = []
        for sym, pos in self.positions.items():
            if pos.units and (symbol is None or sym == symbol):
                data = self._position_data(self.m._syms[sym], pos, None, self.m.now_us)
                out.append(data)
        return out

    def _new_position_id(self) -> int:
        self._next_position_id += 1
        return self._next_position_id

    def _private(self, out: list[Emission]) -> None:
        rng = self._prv
        if rng.random() >= self.m.config.p_private:
            return
        r = rng.random()
        if not self.orders or (len(self.orders) < 3 and r < 0.4):
            self._place(out)
            return
        order = self.orders[rng.choice(sorted(self.orders))]
        if r < 0.8:
            remaining = order.units - order.filled_units
            units = remaining if rng.random() < 0.4 else rng.randint(1, remaining)
            self._fill(order, units, out)
        else:
            del self.orders[order.id]
            self._emit_order(order, "orderCancelled", "Cancelled", out)

    def _place(self, out: list[Emission]) -> None:
        rng = self._prv
        st = self.m._syms[rng.choice(sorted(self.m._syms))]
        bid = rng.random() < 0.5
        side = st.bids if bid else st.asks
        if not side:
            return
        top = max(side) if bid else min(side)
        price = top - rng.randint(0, 3) if bid else top + rng.randint(0, 3)
        if price <= 0:
            return
        self._next_order_id += rng.randint(1, 1000)
        order = _Order(
            id=str(self._next_order_id),
            symbol=st.spec.symbol,
            side="Bid" if bid else "Ask",
            price_ticks=price,
            units=rng.randint(1, max(1, st.spec.max_units // 10)),
            client_id=rng.randint(1, 2**31) if rng.random() < 0.5 else None,
            post_only=rng.random() < 0.3,
        )
        self.orders[order.id] = order
        self._emit_order(order, "orderAccepted", "New", out)

    # -- internals: RFQ ------------------------------------------------------------------------
    def rfq_symbols(self) -> list[str]:
        """RFQ markets (``<spot>_RFQ``): not listed by /markets, as on the exchange."""
        return [f"{s.symbol}_RFQ" for s in self.m.config.markets if not s.perp]

    def _rfq(self, out: list[Emission]) -> None:
        rng = self._rfq_rng
        spots = [st for st in self.m._syms.values() if not st.spec.perp]
        if not spots or rng.random() >= self.m.config.p_rfq:
            return
        if not self.rfqs or (len(self.rfqs) < 2 and rng.random() < 0.5):
            self._next_rfq_id += rng.randint(1, 10**6)
            st = spots[rng.randrange(len(spots))]
            rfq = _Rfq(self._next_rfq_id, st, rng.randint(1, max(1, st.spec.max_units // 50)),
                       rng.choice(("Bid", "Ask")), rng.random() < 0.5, str(rng.randint(1, 10**6)))
            self.rfqs[rfq.id] = rfq
            now_ms = self.m.now_us // 1000
            self._emit_rfq(rfq, "rfqAccepted" if rfq.own else "rfqActive", "New", out,
                           q=rfq.market.wire_size(rfq.units), w=now_ms + 60_000, W=now_ms + 120_000)
            return
        rfq = self.rfqs[sorted(self.rfqs)[rng.randrange(len(self.rfqs))]]
        st = rfq.market
        price = st.wire_price(max(1, st.mid_ticks() + rng.randint(-3, 3)))
        if rfq.quote_id is None:
            self._next_rfq_id += rng.randint(1, 10**6)
            rfq.quote_id = self._next_rfq_id
            if rfq.own:
                quote = canon(st.size(rfq.units) * Decimal(price))
                self._emit_rfq(rfq, "rfqCandidate", "New", out, q=st.wire_size(rfq.units), Q=quote, p=price)
            else:
                self._emit_rfq(rfq, "quoteAccepted", "New", out)
            return
        del self.rfqs[rfq.id]
        if rng.random() < 0.7:
            self._emit_rfq(rfq, "rfqFilled", "Filled", out, p=price)
        elif rfq.own:
            self._emit_rfq(rfq, "rfqCancelled", "Cancelled", out)
        else:
            self._emit_rfq(rfq, "quoteCancelled", "Cancelled", out)

    def _emit_rfq(self, rfq: _Rfq, event: str, status: str, out: list[Emission], **fields: Any) -> None:
        t, e = self.m._times(rfq.market)
        symbol = f"{rfq.market.spec.symbol}_RFQ"
        data: dict[str, Any] = {"e": event, "E": e, "R": rfq.id}
        if rfq.quote_id is not None and event != "rfqCancelled":
            data["u"] = rfq.quote_id
        if rfq.own or event.startswith("quote") or event == "rfqFilled":
            data["C"] = rfq.client_id
        data["s"] = symbol
        if rfq.own:
            data["S"] = rfq.side
        data.update(fields)
        data["X"] = status
        data["T"] = t
        out.append(Emission("account.rfqUpdate", data, private=True))
        out.append(Emission(f"account.rfqUpdate.{symbol}", data, private=True))

    def _order_data(self, o: _Order, event: str, status: str, t: int, e: int) -> dict[str, Any]:
        st = self.m._syms[o.symbol]
        data: dict[str, Any] = {"e": event, "E": e, "s": o.symbol}
        if o.client_id is not None:
            data["c"] = o.client_id
        data.update(
            {
                "S": o.side,
                "o": "LIMIT",
                "f": "GTC",
                "q": "0" if o.pending else st.wire_size(o.units),
                "p": st.wire_price(o.price_ticks),
                "X": status,
                "i": o.id,
                "z": st.wire_size(o.filled_units),
                "Z": canon(o.filled_quote),
                "V": "RejectTaker",
                "T": t,
                "O": "USER",
                "r": False,
                "y": o.post_only,
            }
        )
        if o.trigger_ticks is not None:
            data.update({"P": st.wire_price(o.trigger_ticks), "B": "LastPrice", "Y": st.wire_size(o.units)})
        return data

    def _emit_order(
        self, o: _Order, event: str, status: str, out: list[Emission], fill: dict[str, Any] | None = None
    ) -> None:
        t, e = self.m._times(self.m._syms[o.symbol])
        data = self._order_data(o, event, status, t, e)
        if fill:
            data.update(fill)
        out.append(Emission("account.orderUpdate", data, private=True))
        out.append(Emission(f"account.orderUpdate.{o.symbol}", data, private=True))

    def _fill(self, o: _Order, units: int, out: list[Emission]) -> None:
        st = self.m._syms[o.symbol]
        price, qty = st.price(o.price_ticks), st.size(units)
        notional = price * qty
        fee = (notional * _FEE_RATE).quantize(Decimal("0.000001"))
        o.filled_units += units
        o.filled_quote += notional
        buy = o.side == "Bid"
        other = str(st.order_id + 1)
        st.order_id += 1
        # The fill is also a public trade with the same id; our resting order is the maker.
        out.append(
            self.m._trade(
                st, o.price_ticks, units, o.id if buy else other, other if buy else o.id, buyer_maker=buy
            )
        )
        done = o.filled_units >= o.units
        if done:
            del self.orders[o.id]
        fill = {
            "t": st.trade_id,
            "l": st.wire_size(units),
            "L": st.wire_price(o.price_ticks),
            "m": True,
            "n": canon(fee),
            "N": st.spec.quote,
        }
        self._emit_order(o, "orderFill", "Filled" if done else "PartiallyFilled", out, fill)
        signed = qty if buy else -qty
        changed: list[str] = [st.spec.quote]
        if st.spec.perp:
            realized = self._apply_position(st, units if buy else -units, price, fee, out)
            self.balances[st.spec.quote] = self.balances.get(st.spec.quote, Decimal(0)) - fee + realized
        else:
            self.balances[st.spec.base] = self.balances.get(st.spec.base, Decimal(0)) + signed
            self.balances[st.spec.quote] = self.balances.get(st.spec.quote, Decimal(0)) - signed * price - fee
            changed.insert(0, st.spec.base)
        for asset in changed:
            t, e = self.m._times(st)
            out.append(
                Emission(
                    "account.balanceUpdate",
                    {
                        "e": "balanceUpdate",
                        "E": e,
                        "a": asset,
                        "A": canon(self.balances[asset]),
                        "L": "0",
                        "S": "0",
                        "T": t,
                    },
                    private=True,
                )
            )

    def _apply_position(
        self, st: _Symbol, delta: int, price: Decimal, fee: Decimal, out: list[Emission]
    ) -> Decimal:
        sym = st.spec.symbol
        pos = self.positions.get(sym)
        if pos is None or pos.units == 0:
            pos = self.positions[sym] = _Position(self._new_position_id())
        old = pos.units
        new = old + delta
        realized = Decimal(0)
        if old == 0 or (old > 0) == (delta > 0):
            total = abs(old) + abs(delta)
            pos.entry = ((pos.entry * abs(old) + price * abs(delta)) / total).quantize(_MARK_Q)
        else:
            closed = min(abs(old), abs(delta))
            realized = (price - pos.entry) * st.size(closed) * (1 if old > 0 else -1)
            if (old > 0) != (new > 0) and new != 0:
                pos.entry = price
        pos.units = new
        pos.realized += realized - fee
        pos.fees += fee
        event = "positionOpened" if old == 0 else ("positionClosed" if new == 0 else "positionAdjusted")
        data = self._position_data(st, pos, event, self.m.now_us)
        out.append(Emission("account.positionUpdate", data, private=True))
        out.append(Emission(f"account.positionUpdate.{sym}", data, private=True))
        if new == 0:
            del self.positions[sym]
        return realized

    def _position_data(self, st: _Symbol, pos: _Position, event: str | None, _now: int) -> dict[str, Any]:
        t, e = self.m._times(st)
        mark = st.mid().quantize(_MARK_Q)
        qty = st.size(pos.units)
        size = abs(qty)
        break_even = pos.entry
        if pos.units:
            sign = 1 if pos.units > 0 else -1
            break_even = (pos.entry + sign * pos.fees / abs(qty)).quantize(_MARK_Q)
        data: dict[str, Any] = {} if event is None else {"e": event}
        data.update(
            {
                "E": e,
                "s": st.spec.symbol,
                "b": canon(break_even),
                "B": canon(pos.entry),
                "f": "0.02",
                "M": canon(mark),
                "m": "0.0125",
                "q": canon(qty),
                "Q": canon(size),
                "n": canon((size * mark).quantize(_MARK_Q)),
                "i": pos.id,
                "l": "0",
                "p": canon(pos.realized.quantize(_MARK_Q)),
                "P": canon(((mark - pos.entry) * qty).quantize(_MARK_Q)),
                "T": t,
            }
        )
        return data
