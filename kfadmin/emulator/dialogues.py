"""Short, believable customer-service dialogues (orders, refunds, shipping) in Chinese and English.

Each template is a list of (role, text); role "c" is the customer, "k" the agent.
Texts may carry placeholders filled per rendering. "[image]" and "[voice]" lines
stand for media, shown that way in WeChat's records.
"""

from __future__ import annotations

import random

Line = tuple[str, str]

TEMPLATES_ZH: list[list[Line]] = [
    [
        ("c", "你好，我的订单{order}什么时候发货？"),
        ("k", "您好，我是客服{nick}，帮您查一下，请稍等～"),
        ("k", "您的订单已于昨天发出，顺丰单号SF{track}，预计明天送达。"),
        ("c", "好的，谢谢！"),
        ("k", "不客气，有问题随时联系我们～"),
    ],
    [
        ("c", "我要申请退款，衣服尺码不合适"),
        ("k", "您好，麻烦提供一下订单号哦"),
        ("c", "{order}"),
        ("k", "收到，已为您提交退货申请，请在7天内寄回，运费由我们承担。"),
        ("c", "退款多久到账？"),
        ("k", "仓库签收后1-3个工作日原路退回。"),
        ("c", "好的"),
    ],
    [
        ("c", "在吗？地址填错了，能改吗"),
        ("k", "在的，订单还没发货可以修改，请把新地址发给我"),
        ("c", "{city}{street}{num}号"),
        ("k", "已经帮您改好了，请放心～"),
    ],
    [
        ("c", "请问可以开发票吗？"),
        ("k", "可以的，请提供发票抬头和税号"),
        ("c", "抬头：{company}，税号{tax}"),
        ("k", "好的，电子发票会在3个工作日内发到您的邮箱。"),
        ("c", "谢谢"),
    ],
    [
        ("c", "这款保温杯能装开水吗？"),
        ("k", "可以的，316不锈钢内胆，保温12小时"),
        ("c", "有粉色吗"),
        ("k", "粉色暂时缺货，预计下周补货，可以先加购物车哦"),
    ],
    [
        ("c", "收到的杯子碎了"),
        ("c", "[image]"),
        ("k", "非常抱歉！麻烦再拍一下外包装的照片"),
        ("c", "[image]"),
        ("k", "已经登记了，给您免费补发一件，今天安排发出。"),
        ("c", "好的谢谢"),
    ],
    [
        ("c", "三天了还没发货？？"),
        ("k", "抱歉让您久等了，这批是预售商品，{date}前发出"),
        ("c", "能快点吗"),
        ("k", "已经帮您备注加急，发货后第一时间通知您"),
    ],
    [
        ("c", "优惠券用不了"),
        ("k", "您好，这张券需要满{amount}元才能使用哦"),
        ("c", "哦哦，明白了"),
    ],
    [
        ("c", "[voice]"),
        ("k", "您好，语音收到了，您是想咨询退换货对吗？"),
        ("c", "对"),
        ("k", "签收7天内支持无理由退换，在订单页面点“申请售后”就可以。"),
        ("c", "好的"),
    ],
    [
        ("c", "积分怎么兑换？"),
        ("k", "在“我的-积分商城”里可以兑换，100积分抵1元。"),
        ("c", "好的，谢谢"),
    ],
    [
        ("c", "快递显示已签收，但我没收到"),
        ("k", "您好，帮您联系一下快递员，请稍等"),
        ("k", "快递员说放在{place}了，麻烦您去看一下"),
        ("c", "找到了，谢谢！"),
    ],
    [
        ("c", "退款怎么还没到账？订单{order}"),
        ("k", "您好，查到退款已于{date}原路退回，银行卡可能需要1-3个工作日。"),
        ("c", "好的，我再等等"),
    ],
]

TEMPLATES_EN: list[list[Line]] = [
    [
        ("c", "Hi, where is my order {order}?"),
        ("k", "Hello! Let me check that for you."),
        (
            "k",
            "It shipped yesterday with SF Express, tracking number SF{track}. It should arrive in 2-3 days.",
        ),
        ("c", "Great, thanks!"),
    ],
    [
        ("c", "I'd like a refund, the item arrived damaged."),
        ("k", "Sorry to hear that! Could you send us a photo?"),
        ("c", "[image]"),
        ("k", "Thank you. Your refund is approved and will reach you within 3 business days."),
        ("c", "Thank you"),
    ],
    [
        ("c", "Do you ship to Hong Kong?"),
        ("k", "Yes, shipping to Hong Kong takes 3-5 days and costs 25 RMB."),
        ("c", "OK, thanks"),
    ],
    [
        ("c", "Can I change the size on my order {order}?"),
        ("k", "Sure, which size would you like?"),
        ("c", "Size M please"),
        ("k", "Done, it's changed to M."),
    ],
]

FOLLOW_UPS_ZH = [
    "您好，您的退款已原路退回，请注意查收。",
    "您好，补发的商品已经发出，单号SF{track}。",
    "您好，您的发票已经开好并发送到邮箱了。",
]
FOLLOW_UPS_EN = ["Hi, just following up: your refund has been processed."]

_CITIES = [
    "上海市浦东新区",
    "北京市朝阳区",
    "杭州市西湖区",
    "广州市天河区",
    "成都市武侯区",
    "深圳市南山区",
]
_STREETS = ["张江路", "建国路", "文三路", "体育西路", "天府大道", "科技园路"]
_COMPANIES = ["上海青禾贸易有限公司", "杭州云帆科技有限公司", "北京嘉和文化传媒有限公司"]
_PLACES = ["快递柜", "门卫室", "小区驿站"]


def render(text: str, rng: random.Random, *, nick: str = "小美") -> str:
    if "{" not in text:
        return text
    return text.format(
        order=f"{rng.randint(2024, 2025)}{rng.randint(10**9, 10**10 - 1)}",
        track=rng.randint(10**11, 10**12 - 1),
        nick=nick,
        city=rng.choice(_CITIES),
        street=rng.choice(_STREETS),
        num=rng.randint(1, 999),
        company=rng.choice(_COMPANIES),
        tax=f"91310{rng.randint(10**12, 10**13 - 1)}X",
        date=f"{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
        amount=rng.choice([99, 159, 199, 299]),
        place=rng.choice(_PLACES),
    )


def pick_template(rng: random.Random, english_share: float = 0.25) -> list[Line]:
    pool = TEMPLATES_EN if rng.random() < english_share else TEMPLATES_ZH
    return pool[rng.randrange(len(pool))]


def pick_follow_up(rng: random.Random, english: bool) -> str:
    pool = FOLLOW_UPS_EN if english else FOLLOW_UPS_ZH
    return render(pool[rng.randrange(len(pool))], rng)
