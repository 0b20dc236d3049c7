from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        # The rollups follow every change of the archive, which messaging (below this
        # app) stores; messaging calls what is registered here. (Imported here: models
        # load only once the app registry is ready.)
        from messaging.archive import archive_listen
        from reports.services import rollups_follow_archive

        archive_listen(rollups_follow_archive)
