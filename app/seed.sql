-- system_config defaults. Idempotent: an operator's value is never overwritten; descriptions and
-- categories follow the code, and a row is only rewritten when they actually differ.
INSERT INTO system_config AS current (key, value, description, category)
VALUES
    ('platform_fee_percentage', '5.0', 'Platform fee retained on each confirmed order, in percent of the amount.', 'fees'),
    ('contestation_fee', '10.00', 'Fixed fee charged when a client disputes an order.', 'fees'),
    ('cancellation_fee_percentage', '10.0', 'Fee on a cancelled order, in percent of the amount.', 'fees'),
    ('confirmation_deadline_hours', '36', 'Hours after the provider marks an order done before it is confirmed automatically.', 'orders')
ON CONFLICT (key) DO UPDATE
    SET description = EXCLUDED.description, category = EXCLUDED.category
    WHERE (current.description, current.category) IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.category)
RETURNING key, (xmax = 0) AS inserted;
