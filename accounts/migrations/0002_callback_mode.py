from django.db import migrations, models

MODES = [("plain", "Plaintext"), ("compat", "Compatible"), ("safe", "Safe (AES)")]
HELP = "As set in WeChat's console. In safe mode the callback receiver refuses plaintext pushes."


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    # Accounts that exist already keep today's behaviour (any mode accepted) until an
    # operator sets the mode their WeChat console shows; new accounts start in safe mode.
    operations = [
        migrations.AddField(
            model_name="officialaccount",
            name="callback_mode",
            field=models.CharField(
                choices=MODES, default="plain", help_text=HELP, max_length=8, verbose_name="message encryption"
            ),
        ),
        migrations.AlterField(
            model_name="officialaccount",
            name="callback_mode",
            field=models.CharField(
                choices=MODES, default="safe", help_text=HELP, max_length=8, verbose_name="message encryption"
            ),
        ),
    ]
