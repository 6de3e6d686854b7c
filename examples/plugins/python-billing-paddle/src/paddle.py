"""Paddle Billing webhooks, as plain Python: signature, replay window and event mapping.

Nothing here touches the component's bindings, so `python3 -m unittest` tests it natively.

A webhook carries `Paddle-Signature: ts=<unix seconds>;h1=<hex HMAC-SHA256>`, the HMAC taken
with the notification secret over `<ts>:<raw body>`.
"""

import hashlib
import hmac
import json

# Webhooks signed longer ago than this (or this far in the future) are refused as replays.
MAX_AGE_SECONDS = 300


class Rejected(Exception):
    """The webhook is not Paddle's, or not now: answered 400, no events."""


def verify(secret: str, header, body: bytes, now: int) -> None:
    """Raises Rejected unless `header` signs `body` with `secret` within the replay window."""
    if not header:
        raise Rejected("no Paddle-Signature header")
    fields = {}
    signatures = []
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "h1":
            signatures.append(value.lower())
        else:
            fields[key] = value
    ts = fields.get("ts", "")
    if not ts.isdigit() or not signatures:
        raise Rejected("a malformed Paddle-Signature header")
    if abs(now - int(ts)) > MAX_AGE_SECONDS:
        raise Rejected("the signature is too old or from the future")
    expected = hmac.new(secret.encode(), ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise Rejected("the signature does not match")


def parse_price_plans(setting) -> dict:
    """`pri_a=small,pri_b=large` -> {"pri_a": "small", "pri_b": "large"}."""
    plans = {}
    for pair in (setting or "").split(","):
        price, _, plan = pair.strip().partition("=")
        if price and plan:
            plans[price] = plan
    return plans


# Subscription events Porthole acts on, and what each becomes.
LIFECYCLE = {
    "subscription.paused": "suspend",
    "subscription.past_due": "suspend",
    "subscription.resumed": "unsuspend",
    "subscription.canceled": "terminate",
}


def events(payload: dict, price_plans: dict) -> list:
    """Porthole's events for one notification, as (kind, fields) pairs; [] for events it ignores.

    The order's customer, plan and template come from the subscription's `custom_data`, which
    the checkout sets; plan changes map the first item's price through `price_plans`.
    """
    kind = payload.get("event_type", "")
    event_id = str(payload.get("event_id", ""))
    data = payload.get("data") or {}
    subscription = str(data.get("id", ""))
    if not event_id or not subscription:
        return []
    if kind == "subscription.activated":
        custom = data.get("custom_data") or {}
        return [("activate", {
            "event_id": event_id,
            "external_ref": subscription,
            "customer_id": str(data.get("customer_id", "")),
            "email": str(custom.get("email", "")),
            "name": str(custom.get("name", "")),
            "plan": str(custom.get("plan", "")),
            "template": str(custom.get("template", "")),
            "hostname": custom.get("hostname"),
            "ssh_keys": [str(key) for key in custom.get("ssh_keys", [])],
        })]
    if kind in LIFECYCLE:
        return [(LIFECYCLE[kind], {"event_id": event_id, "external_ref": subscription})]
    if kind == "subscription.updated":
        items = data.get("items") or [{}]
        price = ((items[0] or {}).get("price") or {}).get("id", "")
        plan = price_plans.get(price)
        if plan:
            return [("change-plan", {"event_id": event_id, "external_ref": subscription, "plan": plan})]
    return []


def decode(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except ValueError as err:
        raise Rejected(f"the body is not JSON: {err}") from None
    if not isinstance(payload, dict):
        raise Rejected("the body is not a JSON object")
    return payload
