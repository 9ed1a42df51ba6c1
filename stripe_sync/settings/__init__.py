"""Every setting of stripe_sync: one typed model, read once, with where each value came from.

Layers, each later one wins:

1. the model's defaults;
2. the project file `stripe_sync.yaml` in the working directory (or the file named by
   `--config` / `STRIPE_SYNC_CONFIG`);
3. the environment, and `.env` in the working directory (a variable set in the
   environment wins over `.env`); every variable name the project and the original tool
   used works, listed beside each field;
4. command-line flags.

A secret (the Stripe key, the Supabase service_role key, a database URL with a password)
may appear in the project file only as a reference to an environment variable,
`${STRIPE_SECRET_KEY}` or `{env: STRIPE_SECRET_KEY}`; a literal one is refused. Secrets keep
the name of the variable they came from, so Dagster gets them as `dg.EnvVar` (its UI and run
storage show the name, never the value), and nothing here prints them.

The model is `settings/model.py`; reading it, the only code that reads the process
environment, is `settings/loader.py`.
"""
