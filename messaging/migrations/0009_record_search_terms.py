"""The archive's search index holds the agent and long numbers too (PostgreSQL only).

``messaging_record_terms(text, worker)`` returns what the GIN index ``record_terms``
stores for a record, replacing ``record_text_bigrams``:

- the text's bigrams, as before (``messaging_text_bigrams``);
- every 6-digit substring of each run of 6 or more ASCII digits (an order number, a
  phone number): a query holding such a run asks for two of them, and the few records
  sharing them are the candidates, where eleven digit bigrams, each in many records,
  narrowed nothing;
- ``w:<kf account>`` for a record with an agent, so a text search filtered by agent
  reads the records holding both the words and the agent, not every record of the
  words (nor every record of the agent).

The index only proposes candidates: the search rechecks the text with ``LIKE`` and
the agent with ``worker =``, so results stay exact. Built ``CONCURRENTLY`` (the
archive stays writable), then the old index goes.
"""

from django.db import migrations



class PostgreSQLOnlyRunSQL(migrations.RunSQL):
    """RunSQL that does nothing on other databases (SQLite, the embedded default)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


# PL/pgSQL, not SQL: a SQL function with a subquery is planned at every call, which
# made building the index 7 times slower than the bigrams alone; this is 1.6 times.
TERMS_FUNCTION = """
CREATE OR REPLACE FUNCTION messaging_record_terms(t text, w text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    terms text[] := messaging_text_bigrams(t);
    run text;
BEGIN
    IF t ~ '[0-9]{6}' THEN
        FOR run IN SELECT m[1] FROM regexp_matches(t, '[0-9]{6,}', 'g') AS m LOOP
            FOR i IN 1 .. char_length(run) - 5 LOOP
                terms := terms || substr(run, i, 6);
            END LOOP;
        END LOOP;
    END IF;
    IF w <> '' THEN
        terms := terms || ('w:' || w);
    END IF;
    RETURN terms;
END
$$
"""


class Migration(migrations.Migration):

    atomic = False  # CREATE / DROP INDEX CONCURRENTLY

    dependencies = [
        ("messaging", "0008_merge_20261208_0326"),
    ]

    operations = [
        PostgreSQLOnlyRunSQL(
            sql=[
                TERMS_FUNCTION,
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS record_terms ON messaging_messagerecord "
                'USING gin (messaging_record_terms("text", worker))',
                "DROP INDEX CONCURRENTLY IF EXISTS record_text_bigrams",
            ],
            reverse_sql=[
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS record_text_bigrams ON messaging_messagerecord "
                'USING gin (messaging_text_bigrams("text"))',
                "DROP INDEX CONCURRENTLY IF EXISTS record_terms",
                "DROP FUNCTION IF EXISTS messaging_record_terms(text, text)",
            ],
        ),
    ]
