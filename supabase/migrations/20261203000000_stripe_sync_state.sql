-- stripe_sync: the pipeline's state in the project's own database, and the functions that
-- read and write it over PostgREST. Adds nothing to the CMS table: its write-back columns
-- (20261126000000_stripe_sync.sql) are optional. Idempotent: applying it again changes nothing.
-- The tables are the ones stripe_sync/backends/sql/state.py creates on a direct connection.

create table if not exists public.stripe_sync_state (
  namespace text not null,             -- the catalog table
  catalog_id text not null,            -- the catalog row's id, as text
  batch text,                          -- the batch (Dagster partition) the row belongs to
  stripe_product_id text,              -- the write-back values, kept here with or without
  stripe_price_id text,                -- write-back columns on the CMS table
  sync_status text,
  sync_error text,
  synced_at timestamptz,
  sync_hash text,                      -- one short digest per Stripe field
  checkpoint text,                     -- JSON: what the pipeline last made of the row, the values sent
  updated_at timestamptz,
  primary key (namespace, catalog_id)
);
create index if not exists stripe_sync_state_batch on public.stripe_sync_state (namespace, batch);

create table if not exists public.stripe_sync_ledger (
  namespace text not null,
  step text not null,
  batch text not null,
  run_id text not null,
  record text not null,                -- JSON: the outcomes of the batch's latest run
  primary key (namespace, step, batch)
);

create table if not exists public.stripe_sync_backups (
  namespace text not null,
  run_id text not null,
  batch text not null,
  taken_at text not null,
  backup text not null,                -- JSON: rows and Stripe products before the run wrote
  primary key (namespace, run_id, batch)
);

create table if not exists public.stripe_sync_frames (
  namespace text not null,
  asset text not null,
  batch text not null,
  frame bytea not null,                -- a batch's frame between the steps of a run
  primary key (namespace, asset, batch)
);

-- Only service_role reaches the state: RLS on with no policy shuts out anon and authenticated.
do $$
declare
  name text;
begin
  foreach name in array array['stripe_sync_state', 'stripe_sync_ledger', 'stripe_sync_backups',
                              'stripe_sync_frames'] loop
    execute format('alter table public.%I enable row level security', name);
    execute format('revoke all on table public.%I from public, anon, authenticated', name);
    execute format('grant select, insert, update, delete on table public.%I to service_role', name);
  end loop;
end
$$;

-- A batch's result in one transaction: the write-back columns of the CMS table (when it has
-- them, `write_back_table`: through stripe_sync_write_back of 20261126000000_stripe_sync.sql),
-- the rows' sync state and their checkpoints. `write_backs`: JSON
-- array of {id, batch, stripe_product_id, stripe_price_id, sync_status, sync_error, synced_at,
-- sync_hash}; `checkpoints`: JSON array of {id, batch, checkpoint} (a null checkpoint forgets
-- it); `batch` goes only to a row that has none: a row never changes batch. `security
-- invoker`: it runs with the caller's privileges.
create or replace function public.stripe_sync_record(
  target_table text, state_namespace text, write_backs jsonb, checkpoints jsonb,
  write_back_table boolean)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if write_back_table and pg_catalog.jsonb_array_length(write_backs) > 0 then
    if pg_catalog.to_regprocedure('public.stripe_sync_write_back(text, jsonb)') is null then
      raise exception 'the CMS table has write-back columns but public.stripe_sync_write_back '
        'is missing: apply supabase/migrations/20261126000000_stripe_sync.sql';
    end if;
    perform public.stripe_sync_write_back(target_table, write_backs);  -- ignores `batch`
  end if;
  insert into public.stripe_sync_state as s
    (namespace, catalog_id, batch, stripe_product_id, stripe_price_id, sync_status, sync_error,
     synced_at, sync_hash, updated_at)
  select state_namespace, r.id, r.batch, r.stripe_product_id, r.stripe_price_id, r.sync_status,
         r.sync_error, r.synced_at, r.sync_hash, pg_catalog.now()
    from pg_catalog.jsonb_to_recordset(write_backs) as r(
           id text, batch text, stripe_product_id text, stripe_price_id text, sync_status text,
           sync_error text, synced_at timestamptz, sync_hash text)
  on conflict (namespace, catalog_id) do update
     set batch = coalesce(s.batch, excluded.batch),
         stripe_product_id = excluded.stripe_product_id,
         stripe_price_id = excluded.stripe_price_id,
         sync_status = excluded.sync_status,
         sync_error = excluded.sync_error,
         synced_at = excluded.synced_at,
         sync_hash = excluded.sync_hash,
         updated_at = excluded.updated_at;
  insert into public.stripe_sync_state as s (namespace, catalog_id, batch, checkpoint, updated_at)
  select state_namespace, r.id, r.batch, r.checkpoint, pg_catalog.now()
    from pg_catalog.jsonb_to_recordset(checkpoints) as r(id text, batch text, checkpoint text)
  on conflict (namespace, catalog_id) do update
     set batch = coalesce(s.batch, excluded.batch),
         checkpoint = excluded.checkpoint,
         updated_at = excluded.updated_at;
  return pg_catalog.jsonb_array_length(write_backs) + pg_catalog.jsonb_array_length(checkpoints);
end
$$;

-- The stored sync state of some catalog rows (`ids`: a JSON array of ids as text), as a JSON
-- array: the write-back values of a CMS table that has no write-back columns.
create or replace function public.stripe_sync_sync_states(state_namespace text, ids jsonb)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'catalog_id', s.catalog_id, 'stripe_product_id', s.stripe_product_id,
           'stripe_price_id', s.stripe_price_id, 'sync_status', s.sync_status,
           'sync_error', s.sync_error, 'synced_at', s.synced_at, 'sync_hash', s.sync_hash)),
         '[]'::jsonb)
    from public.stripe_sync_state s
   where s.namespace = state_namespace
     and s.catalog_id in (select pg_catalog.jsonb_array_elements_text(ids));
$$;

-- Every batch the state of a catalog was recorded under, as a JSON array, in order.
create or replace function public.stripe_sync_batch_keys(state_namespace text)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(pg_catalog.jsonb_agg(b.batch order by b.batch), '[]'::jsonb)
    from (select distinct s.batch from public.stripe_sync_state s
           where s.namespace = state_namespace and s.batch is not null) b;
$$;

revoke all on function public.stripe_sync_record(text, text, jsonb, jsonb, boolean)
  from public, anon, authenticated;
revoke all on function public.stripe_sync_sync_states(text, jsonb) from public, anon, authenticated;
revoke all on function public.stripe_sync_batch_keys(text) from public, anon, authenticated;
grant execute on function public.stripe_sync_record(text, text, jsonb, jsonb, boolean) to service_role;
grant execute on function public.stripe_sync_sync_states(text, jsonb) to service_role;
grant execute on function public.stripe_sync_batch_keys(text) to service_role;
