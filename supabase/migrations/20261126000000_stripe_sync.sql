-- stripe_sync: the write-back columns on public.products and a bulk write-back function
-- callable over PostgREST RPC (POST /rest/v1/rpc/stripe_sync_write_back).
-- Idempotent: applying it again changes nothing.

alter table public.products
  add column if not exists stripe_product_id text,
  add column if not exists stripe_price_id text,
  add column if not exists sync_status text,
  add column if not exists sync_error text,
  add column if not exists synced_at timestamptz,
  add column if not exists sync_hash text;

-- "add constraint" has no "if not exists": check the catalog first.
do $$
begin
  if not exists (
    select 1 from pg_catalog.pg_constraint
    where conrelid = 'public.products'::regclass and conname = 'products_sync_status_check'
  ) then
    alter table public.products add constraint products_sync_status_check
      check (sync_status is null or sync_status in ('synced', 'failed', 'invalid', 'archived'));
  end if;
end
$$;

create index if not exists products_sync_status_idx on public.products (sync_status);

-- Sets only the write-back columns of the rows whose id (as text) is in `rows`, a JSON
-- array of objects {id, stripe_product_id, stripe_price_id, sync_status, sync_error,
-- synced_at, sync_hash}; returns how many rows it updated. `security invoker`: it runs
-- with the caller's privileges, so only a role that may update the table can use it.
-- The table name is quoted with %I, so it cannot inject SQL.
create or replace function public.stripe_sync_write_back(target_table text, rows jsonb)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  updated integer;
begin
  execute format(
    'update public.%I as t
        set stripe_product_id = r.stripe_product_id,
            stripe_price_id = r.stripe_price_id,
            sync_status = r.sync_status,
            sync_error = r.sync_error,
            synced_at = r.synced_at,
            sync_hash = r.sync_hash
       from pg_catalog.jsonb_to_recordset($1) as r(
              id text, stripe_product_id text, stripe_price_id text, sync_status text,
              sync_error text, synced_at timestamptz, sync_hash text)
      where t.id::text = r.id',
    target_table)
  using rows;
  get diagnostics updated = row_count;
  return updated;
end
$$;

revoke all on function public.stripe_sync_write_back(text, jsonb) from public, anon, authenticated;
grant execute on function public.stripe_sync_write_back(text, jsonb) to service_role;
