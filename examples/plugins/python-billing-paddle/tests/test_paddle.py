"""The plugin's logic, natively, without building the component: `python3 tests/test_paddle.py`."""

import hashlib
import hmac
import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import paddle  # noqa: E402

SECRET = "pdl_ntfset_example_secret"
NOW = 1767225600


def sign(body: bytes, ts: int = NOW, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return f"ts={ts};h1={digest}"


class Signature(unittest.TestCase):
    body = b'{"event_type":"subscription.activated"}'

    def test_a_signed_body_is_accepted(self):
        paddle.verify(SECRET, sign(self.body), self.body, NOW + 10)

    def test_a_changed_body_or_another_secret_is_refused(self):
        with self.assertRaisesRegex(paddle.Rejected, "does not match"):
            paddle.verify(SECRET, sign(self.body), self.body + b" ", NOW)
        with self.assertRaisesRegex(paddle.Rejected, "does not match"):
            paddle.verify(SECRET, sign(self.body, secret="other"), self.body, NOW)

    def test_any_of_several_signatures_may_match(self):
        header = sign(self.body).replace("h1=", "h1=00;h1=")
        paddle.verify(SECRET, header, self.body, NOW)

    def test_the_replay_window_is_five_minutes_either_way(self):
        paddle.verify(SECRET, sign(self.body), self.body, NOW + 300)
        for now in (NOW + 301, NOW - 301):
            with self.assertRaisesRegex(paddle.Rejected, "too old"):
                paddle.verify(SECRET, sign(self.body), self.body, now)

    def test_missing_or_malformed_headers_are_refused(self):
        for header in (None, "", "ts=abc;h1=00", "ts=1"):
            with self.assertRaises(paddle.Rejected):
                paddle.verify(SECRET, header, self.body, NOW)


class Mapping(unittest.TestCase):
    def payload(self, kind, **data):
        return {"event_id": "evt_1", "event_type": kind, "data": {"id": "sub_1", **data}}

    def test_an_activated_subscription_orders_a_vm_from_its_custom_data(self):
        custom = {"email": "a@example.com", "name": "A", "plan": "small", "template": "debian-12",
                  "ssh_keys": ["ssh-ed25519 AAAA a@b"]}
        [(kind, fields)] = paddle.events(
            self.payload("subscription.activated", customer_id="ctm_1", custom_data=custom), {})
        self.assertEqual(kind, "activate")
        self.assertEqual(fields["external_ref"], "sub_1")
        self.assertEqual(fields["customer_id"], "ctm_1")
        self.assertEqual(fields["plan"], "small")
        self.assertIsNone(fields["hostname"])

    def test_pauses_resumptions_and_cancellations(self):
        for kind, event in [("subscription.paused", "suspend"), ("subscription.past_due", "suspend"),
                            ("subscription.resumed", "unsuspend"), ("subscription.canceled", "terminate")]:
            self.assertEqual(paddle.events(self.payload(kind), {}),
                             [(event, {"event_id": "evt_1", "external_ref": "sub_1"})])

    def test_a_new_price_is_a_plan_change_when_it_maps_to_a_plan(self):
        plans = paddle.parse_price_plans("pri_small=small, pri_large=large")
        updated = self.payload("subscription.updated", items=[{"price": {"id": "pri_large"}}])
        self.assertEqual(paddle.events(updated, plans)[0][1]["plan"], "large")
        unknown = self.payload("subscription.updated", items=[{"price": {"id": "pri_x"}}])
        self.assertEqual(paddle.events(unknown, plans), [])

    def test_other_events_and_incomplete_ones_are_ignored(self):
        self.assertEqual(paddle.events(self.payload("transaction.completed"), {}), [])
        self.assertEqual(paddle.events({"event_type": "subscription.canceled"}, {}), [])

    def test_bodies_must_be_json_objects(self):
        for body in (b"not json", b"[]"):
            with self.assertRaises(paddle.Rejected):
                paddle.decode(body)
        self.assertEqual(paddle.decode(json.dumps({"a": 1}).encode()), {"a": 1})


if __name__ == "__main__":
    unittest.main()
