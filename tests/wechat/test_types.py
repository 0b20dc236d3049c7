"""from_dict: lenient about number/string spellings and unknown keys, strict about
values that cannot mean anything."""

from __future__ import annotations

import pytest
import responses

from kfadmin.wechat import (
    AccessToken,
    Account,
    MenuOption,
    MsgMenu,
    MsgRecordList,
    OnlineAccount,
    Session,
    WaitCase,
    WeChatResponseError,
    from_dict,
)
from tests.wechat.helpers import BASE


@pytest.mark.parametrize("kf_id", ["1001", 1001, 1001.0])
def test_kf_id_is_stored_as_a_string_whatever_its_wire_type(kf_id):
    assert from_dict(Account, {"kf_id": kf_id}).kf_id == "1001"
    assert from_dict(OnlineAccount, {"kf_id": kf_id}).kf_id == "1001"


@pytest.mark.parametrize(
    ("wire", "expected"), [(1700000000, 1700000000), ("1700000000", 1700000000), ("", 0), (None, 0)]
)
def test_invite_expire_time_is_stored_as_an_int(wire, expected):
    assert from_dict(Account, {"invite_expire_time": wire}).invite_expire_time == expected


def test_missing_keys_get_defaults_and_unknown_keys_are_ignored():
    account = from_dict(Account, {"kf_account": "a@b", "kf_openid": "new", "auto_accept": 3})

    assert account == Account(kf_account="a@b")


def test_nested_lists_are_built_recursively():
    wait = from_dict(
        WaitCase, {"count": "2", "waitcaselist": [{"openid": "o1", "latest_time": "5"}]}
    )

    assert wait == WaitCase(count=2, waitcaselist=[Session(openid="o1", latest_time=5)])


def test_a_menu_with_its_list_field_round_trips():
    assert from_dict(MsgMenu, {"list": [{"id": "1", "content": "是"}]}) == MsgMenu(
        list=[MenuOption(id="1", content="是")]
    )


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (Account, {"invite_expire_time": "tomorrow"}),
        (Account, {"invite_expire_time": True}),
        (Account, {"kf_nick": {"nested": "object"}}),
        (MsgRecordList, {"recordlist": {"not": "a list"}}),
        (MsgRecordList, {"recordlist": ["not an object"]}),
        (MsgRecordList, {"msgid": 1.5}),
        (Account, ["not", "an", "object"]),
    ],
)
def test_values_that_cannot_be_coerced_raise_a_response_error(cls, data):
    with pytest.raises(WeChatResponseError) as caught:
        from_dict(cls, data)

    assert caught.value.retryable is False


def test_a_malformed_answer_over_the_wire_is_a_response_error(kf, rsps: responses.RequestsMock):
    rsps.add(responses.GET, BASE + "/cgi-bin/customservice/getkflist", json={"kf_list": "oops"})

    with pytest.raises(WeChatResponseError):
        kf.get_account_list()


def test_access_token_repr_hides_the_token():
    assert "TOP_SECRET" not in repr(AccessToken(access_token="TOP_SECRET", expires_in=7200))
