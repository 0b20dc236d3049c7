"""WeChat's message push URL: /wechat/callback/<appid>/ (also answered without the
trailing slash: WeChat POSTs to the exact URL configured, and a redirect would lose
the body)."""

from django.urls import path

from messaging import callback

urlpatterns = [
    path("<str:appid>/", callback.wechat_callback, name="wechat_callback"),
    path("<str:appid>", callback.wechat_callback),
]
