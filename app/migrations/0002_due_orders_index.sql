-- The auto-confirm job walks awaiting orders in (provider_completed_at, id) order and stops at the
-- deadline cut-off. A partial index holds only the awaiting orders, so it stays small however many
-- completed orders accumulate, and both the range scan and the keyset cursor are served by it.
CREATE INDEX orders_awaiting_confirmation_due_idx
    ON orders (provider_completed_at, id)
    WHERE status = 'awaiting_confirmation';
