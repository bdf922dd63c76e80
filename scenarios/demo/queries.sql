-- The SQL the shop app's version running in production issues, as its data
-- layer sends it (parameters are $1, $2, ...): scenarios/demo.yaml's
-- compat.queries. Each is prepared against the schema before the first
-- pending migration and after each one; a query that stops working is that
-- migration's incompatibility. (`rehearse queries --url URL` exports the same
-- from production's pg_stat_statements.)

-- Sign-in.
-- rate: 20/s
SELECT id, email, full_name, country, plan, created_at
FROM users
WHERE email = $1;

-- Account page: the user and what they spent.
-- rate: 10/s
SELECT u.id, u.full_name, u.plan, count(o.id) AS orders, coalesce(sum(o.total_cents), 0) AS spent_cents
FROM users u
LEFT JOIN orders o ON o.user_id = u.id
WHERE u.id = $1
GROUP BY u.id;

-- Order history, newest first.
-- rate: 30/s
SELECT id, status, total_cents, currency, created_at
FROM orders
WHERE user_id = $1
ORDER BY created_at DESC
LIMIT $2;

-- Order page: its line items.
-- rate: 30/s
SELECT i.sku, i.quantity, i.unit_price_cents, i.quantity * i.unit_price_cents AS line_cents
FROM order_items i
WHERE i.order_id = $1
ORDER BY i.id;

-- Packing slip: a box per unit for the warehouse to tick.
-- rate: 5/s
SELECT i.sku, i.quantity, repeat('[ ] ', i.quantity) AS boxes
FROM order_items i
WHERE i.order_id = $1
ORDER BY i.sku;

-- Checkout: a coupon, the order, its items.
-- rate: 5/s
SELECT id, percent_off
FROM coupons
WHERE code = $1 AND (valid_until IS NULL OR valid_until > now());

-- rate: 5/s
INSERT INTO orders (user_id, status, total_cents, currency, coupon_id)
VALUES ($1, 'pending', $2, $3, $4)
RETURNING id;

-- rate: 12/s
INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
VALUES ($1, $2, $3, $4);

-- Payment webhook.
-- rate: 5/s
UPDATE orders
SET status = 'paid', updated_at = now()
WHERE id = $1 AND status = 'pending';

-- Activity tracking, on every page view.
-- rate: 50/s
INSERT INTO events (user_id, kind, payload)
VALUES ($1, $2, $3);

-- Admin: best sellers this month.
-- rate: 6/min
SELECT i.sku, sum(i.quantity) AS units
FROM order_items i
JOIN orders o ON o.id = i.order_id
WHERE o.created_at >= date_trunc('month', now()) AND o.status <> 'cancelled'
GROUP BY i.sku
ORDER BY units DESC
LIMIT 20;

-- Account deletion.
-- rate: 1/min
DELETE FROM events
WHERE user_id = $1;

-- Each connection's time zone: a utility statement, not checked.
-- rate: 1/s
SET TIME ZONE 'UTC';
