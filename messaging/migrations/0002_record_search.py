"""Indexes for the archive that the model cannot express.

1. ``record_provisional_time`` (every database): a partial index on the few rows that
   did not come from the history sync (callbacks, kfadmin's own sends). The sync looks
   for them next to every page it stores to reconcile them with the synced copies; the
   partial index makes that look-up free when there are none, and costs nothing on
   synced rows.

2. Chinese search (PostgreSQL only): ``messaging_text_bigrams(text)`` returns the
   text's 2-character substrings after folding ASCII letters to lower case, and a GIN
   index on it finds the candidate rows of any query of two or more characters; the
   query rechecks them with ``LIKE``. Locale-independent on purpose: ``COLLATE "C"``
   makes ``lower()`` fold only A-Z, whatever the database's LC_CTYPE is, so the
   function is truly IMMUTABLE and SQLite's ``lower()`` folds the same way.

Both are raw SQL so Django's autodetector does not see them (the model's Meta stays
the single source of the ordinary indexes).
"""

from django.db import migrations

BIGRAMS_FUNCTION = """
CREATE OR REPLACE FUNCTION messaging_text_bigrams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(substr(folded, i, 2)), '{}'::text[])
    FROM (SELECT lower(t COLLATE "C") AS folded) AS f,
         generate_series(1, char_length(t) - 1) AS i
$$
"""


class PostgreSQLOnlyRunSQL(migrations.RunSQL):
    """RunSQL that does nothing on other databases (SQLite, the embedded default)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX record_provisional_time ON messaging_messagerecord "
                "(official_account_id, time) WHERE source <> 'sync'"
            ),
            reverse_sql="DROP INDEX record_provisional_time",
        ),
        PostgreSQLOnlyRunSQL(
            sql=[
                BIGRAMS_FUNCTION,
                "CREATE INDEX record_text_bigrams ON messaging_messagerecord "
                'USING gin (messaging_text_bigrams("text"))',
            ],
            reverse_sql=[
                "DROP INDEX IF EXISTS record_text_bigrams",
                "DROP FUNCTION IF EXISTS messaging_text_bigrams(text)",
            ],
        ),
    ]
