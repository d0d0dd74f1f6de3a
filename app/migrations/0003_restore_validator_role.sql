-- The role the restore-validation Lambda (lambdas/restore_validation) logs in as on a restored copy: it
-- lives in the data, so every snapshot and point-in-time restore carries it.
-- No password: on RDS it authenticates with an IAM token (membership in rds_iam makes RDS require one),
-- so no secret exists to leak or rotate. On plain PostgreSQL there is no rds_iam role and the grant is
-- skipped; the role then cannot log in until someone gives it a password (tests do).
-- Read-only by grants: SELECT on the contract tables, nothing else. Roles are cluster-wide, so creating it
-- must tolerate another database of the same server (or a concurrent runner) having created it first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'restore_validator') THEN
        BEGIN
            CREATE ROLE restore_validator LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'rds_iam') THEN
        GRANT rds_iam TO restore_validator;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO restore_validator', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO restore_validator;
GRANT SELECT ON users, wallets, orders, transactions, audit_log, system_config, schema_migrations
    TO restore_validator;
