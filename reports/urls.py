from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("reports/", views.reports, name="reports"),
    path("reports/<slug:table>.csv", views.reports_csv, name="csv"),
    path("reports/agents/<int:pk>/presence/", views.presence, name="presence"),
]
