-- One database role per consumer, so each one can do its job and nothing more (issue #14). The user that
-- runs the migrations (RDS's master user, DigitalOcean's doadmin) owns the schema; nothing else does.
--
--   api            the API (and the app image's workers and scheduled jobs): DML on the contract tables;
--                  transactions and audit_log are append-only (a ledger is never rewritten by the app).
--   auto_confirm   lambdas/auto_confirm: exactly the columns core.BATCH_SQL and its helpers read and write.
--   health_check   lambdas/health_check: CONNECT and `SELECT 1`, no table at all, read-only sessions.
--   restore_validator  see 0003.
--
-- Works as a NOSUPERUSER CREATEROLE login (RDS's master is a member of rds_superuser, not a superuser;
-- doadmin is not one either): it only creates roles and grants on objects this user owns. Since
-- PostgreSQL 16 the creator of a role holds ADMIN OPTION on it, which the DigitalOcean migrate job needs to
-- make the app's login a member (app/migrate.py --app-login).
-- No passwords: on RDS the roles log in with IAM tokens (membership in rds_iam makes RDS require one, and
-- IAM auth requires TLS); on plain PostgreSQL the grant is skipped and the roles cannot log in until
-- someone gives them a password (tests do). Roles are cluster-wide: creating one tolerates another database
-- of the same server, or a concurrent runner, having created it first. Everything here is idempotent.
-- No default privileges on purpose: a table a later migration adds is nobody's until that migration grants
-- it to the consumers that need it (tests/app/test_app_roles.py shows what each role can and cannot do).
DO $$
DECLARE
    consumer text;
BEGIN
    FOREACH consumer IN ARRAY ARRAY['api', 'auto_confirm', 'health_check'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = consumer) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', consumer);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'rds_iam') THEN
            EXECUTE format('GRANT rds_iam TO %I', consumer);
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), consumer);
    END LOOP;
    -- PostgreSQL < 15 lets PUBLIC create objects in `public`; take that away where this user may (it owns
    -- the schema), so no consumer can create tables whatever the engine version. A no-op on 15+.
    IF pg_catalog.pg_has_role(
        (SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = 'public'), 'USAGE'
    ) THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    END IF;
END
$$;

-- The health check runs one `SELECT 1` a minute per target: no schema, no table, read-only sessions, and a
-- few connections at most (it cannot be used to exhaust the server's connections).
ALTER ROLE health_check CONNECTION LIMIT 5;
ALTER ROLE health_check SET default_transaction_read_only = on;

GRANT USAGE ON SCHEMA public TO api, auto_confirm;

GRANT SELECT, INSERT, UPDATE, DELETE ON users, wallets, orders, system_config TO api;
GRANT SELECT, INSERT ON transactions, audit_log TO api;
GRANT USAGE ON SEQUENCE users_id_seq, orders_id_seq, transactions_id_seq, audit_log_id_seq TO api;

-- auto_confirm: the reads of core.py (system_config values, the platform admin, due orders, wallets) and
-- its writes (confirm orders, move wallet balances, append to the ledger and the audit log). Column grants:
-- it cannot read e-mail addresses, change amounts or parties, or rewrite the ledger. Row locks (FOR NO KEY
-- UPDATE) need UPDATE on some column of the table, which the column grants give.
GRANT SELECT (key, value) ON system_config TO auto_confirm;
GRANT SELECT (id, role) ON users TO auto_confirm;
GRANT SELECT (id, client_id, provider_id, amount, status, provider_completed_at) ON orders TO auto_confirm;
GRANT UPDATE (status, auto_confirmed, confirmed_at, updated_at) ON orders TO auto_confirm;
GRANT SELECT (user_id, available, blocked) ON wallets TO auto_confirm;
GRANT UPDATE (available, blocked, updated_at) ON wallets TO auto_confirm;
GRANT INSERT (order_id, user_id, kind, amount, created_at) ON transactions TO auto_confirm;
GRANT INSERT (entity, entity_id, action, details, created_at) ON audit_log TO auto_confirm;
GRANT USAGE ON SEQUENCE transactions_id_seq, audit_log_id_seq TO auto_confirm;
