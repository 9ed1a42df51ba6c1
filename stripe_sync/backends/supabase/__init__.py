"""The Supabase backend: a Supabase project through its REST API (PostgREST) with supabase-py.

- `project.py`: `SupabaseProject`, the one connection the catalog and the state share: the
  client, `execute` (a request with its failures classified and retried), where it is;
- `pages.py`: reads to their end whatever the project's row cap, and values as PostgREST's
  filters take them;
- `catalog.py`: `SupabaseCatalog`, the catalog table and its write-back (RPC
  `stripe_sync_write_back`);
- `state.py`: `SupabaseState`, the state tables; a batch's state and write-back go in one RPC
  request, `stripe_sync_record`, one transaction in the database.

Their API to each other: the state takes the catalog's `project` and its public `table` and
`has_write_back_columns`.
"""
