"""The domain's words on the archive's records."""

from __future__ import annotations

import pytest

from messaging.models import MessageRecord

OperCode = MessageRecord.OperCode


def test_the_opercode_groups_are_not_choices():
    assert OperCode.values == [1000, 1001, 1002, 1003, 1004, 1005, 2001, 2002, 2003]


@pytest.mark.parametrize(
    ("code", "customer", "agent", "session"),
    [
        (OperCode.RECEIVED_BY_OA, True, False, False),
        (OperCode.AGENT_RECEIVED, True, False, False),
        (OperCode.AGENT_SENT, False, True, False),
        (OperCode.QUEUED, False, False, True),
        (OperCode.GRABBED, False, False, True),
        (1006, False, False, True),  # a session event WeChat adds later is still one
        (3001, False, False, False),
    ],
)
def test_a_record_knows_who_wrote_it(code, customer, agent, session):
    record = MessageRecord(opercode=code)
    assert (record.is_customer_message, record.is_agent_message, record.is_session_event) == (
        customer, agent, session,
    )


def test_a_session_starts_when_accepted_created_or_grabbed():
    assert OperCode.SESSION_STARTS == {OperCode.ACCEPTED, OperCode.CREATED, OperCode.GRABBED}
    assert OperCode.SESSION_STARTS < OperCode.SESSION_EVENTS
    assert not OperCode.SESSION_EVENTS & (OperCode.CUSTOMER | OperCode.AGENT)
