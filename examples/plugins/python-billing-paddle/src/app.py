"""`python-billing-paddle`: a Porthole billing adapter (world `billing-adapter`) for Paddle Billing.

Settings: `webhook_secret` (the notification destination's secret), `price_plans` (optional,
`pri_…=plan,…`, for plan changes). Point Paddle's notification destination at
`https://<porthole>/api/v1/webhooks/<plugin name>`.
"""

# Every module is imported here, at build time: componentize-py bundles only what the code
# imports while it is built, and `hmac` imports `warnings` lazily.
import json
import warnings  # noqa: F401

import paddle
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.billing import (
    BillingEvent_Activate,
    BillingEvent_ChangePlan,
    BillingEvent_Suspend,
    BillingEvent_Terminate,
    BillingEvent_Unsuspend,
    Customer,
    Order,
    PlanChange,
    ServiceRef,
    WebhookOutcome,
    WebhookRequest,
    WebhookResponse,
)
from wit_world.imports import host, wall_clock
from wit_world.imports.porthole_plugin_types import ErrorKind, PluginError


class Billing(exports.Billing):
    def handle_webhook(self, request: WebhookRequest) -> WebhookOutcome:
        # Anything but the contract's own error would crash the call: report it as the plugin's
        # bug.
        try:
            return handle(request)
        except Err as err:
            if isinstance(err.value, PluginError):
                raise
            raise Err(PluginError(kind=ErrorKind.INTERNAL, message=f"uncaught {err.value!r}"))
        except Exception as err:  # noqa: BLE001
            raise Err(PluginError(kind=ErrorKind.INTERNAL, message=f"{type(err).__name__}: {err}"))


def handle(request: WebhookRequest) -> WebhookOutcome:
    secret = host.setting("webhook_secret")
    if not secret:
        # An error, not a 4xx: Paddle retries, and the delivery succeeds once the operator sets it.
        raise Err(PluginError(kind=ErrorKind.INVALID_INPUT, message="the setting `webhook_secret` is not set"))
    body = bytes(request.body)
    header = next((value for name, value in request.headers if name == "paddle-signature"), None)
    try:
        paddle.verify(secret, header, body, wall_clock.now().seconds)
        payload = paddle.decode(body)
    except paddle.Rejected as why:
        host.log(host.LogLevel.WARN, f"webhook refused: {why}")
        return answer(400, str(why), [])
    mapped = paddle.events(payload, paddle.parse_price_plans(host.setting("price_plans")))
    host.log(host.LogLevel.INFO, f"{payload.get('event_type')}: {len(mapped)} event(s)")
    return answer(200, "ok", [to_wit(kind, fields) for kind, fields in mapped])


def answer(status: int, message: str, events: list) -> WebhookOutcome:
    body = json.dumps({"message": message}).encode()
    response = WebhookResponse(status=status, headers=[("content-type", "application/json")], body=body)
    return WebhookOutcome(response=response, events=events)


def to_wit(kind: str, fields: dict):
    if kind == "activate":
        customer = Customer(external_id=fields["customer_id"], email=fields["email"], name=fields["name"])
        return BillingEvent_Activate(Order(
            event_id=fields["event_id"],
            customer=customer,
            plan=fields["plan"],
            template=fields["template"],
            hostname=fields["hostname"],
            ssh_keys=fields["ssh_keys"],
            external_ref=fields["external_ref"],
        ))
    if kind == "change-plan":
        return BillingEvent_ChangePlan(PlanChange(
            event_id=fields["event_id"], external_ref=fields["external_ref"], plan=fields["plan"]))
    ref = ServiceRef(event_id=fields["event_id"], external_ref=fields["external_ref"])
    return {"suspend": BillingEvent_Suspend, "unsuspend": BillingEvent_Unsuspend,
            "terminate": BillingEvent_Terminate}[kind](ref)
