from django.urls import path

import kfadmin.converters  # noqa: F401  (registers <openid:…>)
from messaging import views, views_customer, views_quick_replies

app_name = "messaging"

urlpatterns = [
    path("history/", views.history, name="history"),
    path("history/export.<str:fmt>", views.export, name="export"),
    path("history/exports/", views.exports, name="exports"),
    path("history/exports/<int:job_id>/download", views.export_download, name="export_download"),
    path("inbox/", views.inbox, name="inbox"),
    path("alerts/", views.alerts, name="alerts"),
    path("conversations/<openid:openid>/", views.conversation, name="conversation"),
    path("conversations/<openid:openid>/seen/", views.seen, name="seen"),
    path("conversations/<openid:openid>/send/", views.send, name="send"),
    path("conversations/<openid:openid>/typing/", views.typing, name="typing"),
    path("conversations/<openid:openid>/transcript/", views.transcript, name="transcript"),
    path("outbound/<int:outbound_id>/", views.outbound_status, name="outbound"),
    path("outbound/<int:outbound_id>/resend/", views.resend, name="resend"),
    # Who the customer is: the conversation's side panel, search within it, a date.
    path("conversations/<openid:openid>/customer/", views_customer.customer_panel, name="customer_panel"),
    path("conversations/<openid:openid>/customer/profile/", views_customer.customer_profile, name="customer_profile"),
    path("conversations/<openid:openid>/customer/notes/", views_customer.customer_note, name="customer_note"),
    path("conversations/<openid:openid>/customer/notes/<int:note_id>/delete/", views_customer.customer_note_remove,
         name="customer_note_delete"),
    path("conversations/<openid:openid>/jump/", views_customer.conversation_jump, name="conversation_jump"),
    # Quick replies: the management page and the composer's picker.
    path("quick-replies/", views_quick_replies.quick_replies, name="quick_replies"),
    path("quick-replies/add/", views_quick_replies.quick_reply_add, name="quick_reply_add"),
    path("quick-replies/pick/", views_quick_replies.quick_reply_pick, name="quick_reply_pick"),
    path("quick-replies/<int:reply_id>/edit/", views_quick_replies.quick_reply_edit, name="quick_reply_edit"),
    path("quick-replies/<int:reply_id>/delete/", views_quick_replies.quick_reply_remove, name="quick_reply_delete"),
    path("quick-replies/<int:reply_id>/used/", views_quick_replies.quick_reply_used, name="quick_reply_used"),
    path("media/<int:media_file_id>/", views.media_file, name="media"),
    path("library/", views.library, name="library"),
]
