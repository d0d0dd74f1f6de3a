-- Core marketplace schema. A contract for the auto-confirm job, backup validation and other checks:
-- tables and columns may be added by later migrations, never renamed.
-- Money is numeric(14,2) (never float); balances can never go negative, amounts are strictly positive.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    role        text NOT NULL CONSTRAINT users_role_known CHECK (role IN ('client', 'provider', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The platform's own wallet is the admin user's (the lowest id among admins, see lambdas/auto_confirm).
CREATE TABLE wallets (
    user_id     bigint PRIMARY KEY REFERENCES users (id),
    available   numeric(14, 2) NOT NULL DEFAULT 0 CONSTRAINT wallets_available_not_negative CHECK (available >= 0),
    blocked     numeric(14, 2) NOT NULL DEFAULT 0 CONSTRAINT wallets_blocked_not_negative CHECK (blocked >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- pending/in_progress precede the provider marking the work done; awaiting_confirmation is where the
-- client (or, after the deadline, the auto-confirm job) releases the escrow.
CREATE TABLE orders (
    id                     bigserial PRIMARY KEY,
    client_id              bigint NOT NULL REFERENCES users (id),
    provider_id            bigint NOT NULL REFERENCES users (id),
    amount                 numeric(14, 2) NOT NULL CONSTRAINT orders_amount_positive CHECK (amount > 0),
    status                 text NOT NULL DEFAULT 'pending' CONSTRAINT orders_status_known CHECK (
                               status IN ('pending', 'in_progress', 'awaiting_confirmation',
                                          'completed', 'disputed', 'cancelled')),
    provider_completed_at  timestamptz,
    confirmed_at           timestamptz,
    auto_confirmed         boolean NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_client_is_not_provider CHECK (client_id <> provider_id),
    -- the deadline runs from provider_completed_at, so an order cannot await confirmation without it
    CONSTRAINT orders_awaiting_has_completion_time CHECK (
        status <> 'awaiting_confirmation' OR provider_completed_at IS NOT NULL)
);
CREATE INDEX orders_client_id_idx ON orders (client_id);
CREATE INDEX orders_provider_id_idx ON orders (provider_id);

-- One row per money movement; `kind` says which balance moved which way (see lambdas/auto_confirm/README.md).
CREATE TABLE transactions (
    id          bigserial PRIMARY KEY,
    order_id    bigint REFERENCES orders (id),
    user_id     bigint NOT NULL REFERENCES users (id),
    kind        text NOT NULL,
    amount      numeric(14, 2) NOT NULL CONSTRAINT transactions_amount_positive CHECK (amount > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_order_id_idx ON transactions (order_id);
CREATE INDEX transactions_user_id_idx ON transactions (user_id);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    entity      text NOT NULL,
    entity_id   bigint,
    action      text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);

CREATE TABLE system_config (
    key          text PRIMARY KEY,
    value        text NOT NULL,
    description  text,
    category     text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
