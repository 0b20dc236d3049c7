from django.urls import path

from accounts import views

urlpatterns = [
    path("account/switch/", views.account_switch, name="account_switch"),
]
