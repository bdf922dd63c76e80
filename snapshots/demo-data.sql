-- Demo data for the `demo` database: a small shop with a skewed, prod-like shape.
--
-- Run by snapshots/generate.sh after migrations 0001 and 0002:
--     psql -v ON_ERROR_STOP=1 -v scale=1 -d demo -f snapshots/demo-data.sql
--
-- Rows per unit of scale: users 20k, orders 200k, order_items 500k, events 400k
-- (coupons: 200, fixed). The data is reproducible: one session, a fixed setseed(),
-- and a fixed reference time ("now" of the snapshot) instead of now().
\set ON_ERROR_STOP 1
\if :{?scale}
\else
\set scale 1
\endif

SET client_min_messages = warning;
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
SET work_mem = '64MB';
SET TIME ZONE 'UTC';
-- The data is consistent by construction; skip the per-row foreign-key triggers
-- during the bulk load (orphans are checked at the end).
SET session_replication_role = replica;

SELECT greatest(1, round(20000  * :scale))::bigint AS n_users,
       greatest(1, round(200000 * :scale))::bigint AS n_orders,
       greatest(1, round(500000 * :scale))::bigint AS n_items,
       greatest(1, round(400000 * :scale))::bigint AS n_events,
       200::int                                    AS n_coupons,
       '2025-06-01 00:00:00+00'::timestamptz       AS ref_now
\gset

SELECT setseed(0.42) \g /dev/null

BEGIN;

-- coupons: a few hundred promo codes, some expired.
INSERT INTO public.coupons (id, code, percent_off, valid_until, max_redemptions)
SELECT g,
       'PROMO' || lpad(g::text, 4, '0'),
       (ARRAY[5, 10, 10, 15, 20, 25, 50])[1 + floor(random() * 7)::int],
       CASE WHEN random() < 0.3 THEN NULL
            ELSE timestamptz :'ref_now' + (floor(random() * 900) - 600) * interval '1 day' END,
       CASE WHEN random() < 0.5 THEN NULL ELSE (1 + floor(random() * 20))::int * 100 END
FROM generate_series(1, :n_coupons) AS g;

-- users: signed up over ~3 years, ids in sign-up order; plans and countries skewed.
INSERT INTO public.users (id, email, full_name, country, plan, created_at)
SELECT g,
       'user' || g || '@example.com',
       (ARRAY['Ada','Alan','Grace','Linus','Barbara','Ken','Margaret','Dennis','Frances','Edsger',
              'Radia','Donald','Hedy','Tim','Katherine','Guido'])[1 + floor(random() * 16)::int]
         || ' ' ||
       (ARRAY['Lovelace','Turing','Hopper','Torvalds','Liskov','Thompson','Hamilton','Ritchie',
              'Allen','Dijkstra','Perlman','Knuth','Lamarr','Berners-Lee','Johnson','van Rossum'])[1 + floor(random() * 16)::int],
       (ARRAY['US','US','US','US','US','GB','GB','DE','DE','FR','CA','NL','BR','IN','JP','AU'])[1 + floor(random() * 16)::int],
       CASE WHEN r < 0.80 THEN 'free' WHEN r < 0.95 THEN 'pro' ELSE 'enterprise' END,
       date_trunc('second', timestamptz :'ref_now' - interval '1095 days'
                            + (g::float8 / :n_users) * interval '1094 days'
                            + random() * interval '1 day')
FROM (SELECT g, random() AS r FROM generate_series(1, :n_users) AS g) AS s;

-- order lines, staged first so that orders.total_cents can be their sum.
-- 2 or 3 lines per order (2.5 on average), in order-id order, as an OLTP table would be.
-- 5000 SKUs, a few best-sellers; each SKU has its own fixed price (x.99).
CREATE TEMP TABLE tmp_items ON COMMIT DROP AS
SELECT id, order_id,
       'SKU-' || lpad(sku_no::text, 5, '0') AS sku,
       quantity,
       (99 + 100 * ((sku_no * 7919) % 250))::int AS unit_price_cents
FROM (
  SELECT g AS id,
         1 + ((g::bigint - 1) * :n_orders / :n_items) AS order_id,
         (1 + floor(5000 * random() ^ 2))::int AS sku_no,
         CASE WHEN r < 0.70 THEN 1 WHEN r < 0.90 THEN 2 ELSE 3 + floor(random() * 8)::int END AS quantity
  FROM (SELECT g, random() AS r FROM generate_series(1, :n_items) AS g) AS s0
) AS s;

-- orders: over the last ~2 years, ids in time order; heavy buyers among the early users;
-- status skewed towards 'delivered', recent orders still in flight.
CREATE TEMP TABLE tmp_orders ON COMMIT DROP AS
SELECT g AS id,
       1 + floor(:n_users * random() ^ 2)::bigint AS user_id,
       r_status,
       CASE WHEN random() < 0.05 THEN 1 + floor(random() * :n_coupons)::int END AS coupon_id,
       (ARRAY['web','web','web','ios','ios','android'])[1 + floor(random() * 6)::int] AS channel,
       CASE WHEN random() < 0.8 THEN 'standard' ELSE 'express' END AS shipping,
       random() < 0.04 AS gift,
       date_trunc('second', timestamptz :'ref_now' - interval '730 days'
                            + (g::float8 / :n_orders) * interval '730 days'
                            - random() * interval '1 hour') AS created_at
FROM (SELECT g, random() AS r_status FROM generate_series(1, :n_orders) AS g) AS s;

INSERT INTO public.orders (id, user_id, status, total_cents, currency, coupon_id, details,
                           created_at, updated_at)
SELECT o.id,
       o.user_id,
       CASE
         WHEN o.created_at > timestamptz :'ref_now' - interval '2 days' THEN
           CASE WHEN o.r_status < 0.5 THEN 'pending' WHEN o.r_status < 0.9 THEN 'paid' ELSE 'cancelled' END
         WHEN o.created_at > timestamptz :'ref_now' - interval '7 days' THEN
           CASE WHEN o.r_status < 0.8 THEN 'shipped' WHEN o.r_status < 0.95 THEN 'delivered' ELSE 'cancelled' END
         WHEN o.r_status < 0.86 THEN 'delivered'
         WHEN o.r_status < 0.90 THEN 'shipped'
         WHEN o.r_status < 0.92 THEN 'paid'
         WHEN o.r_status < 0.93 THEN 'pending'
         WHEN o.r_status < 0.98 THEN 'cancelled'
         ELSE 'refunded'
       END,
       coalesce(t.total_cents, 0),
       'USD',
       o.coupon_id,
       jsonb_build_object('channel', o.channel,
                          'shipping', jsonb_build_object('method', o.shipping,
                                                         'carrier', CASE WHEN o.shipping = 'express' THEN 'dhl' ELSE 'ups' END),
                          'gift', o.gift,
                          'lines', coalesce(t.lines, 0)),
       o.created_at,
       o.created_at + interval '1 hour'
FROM tmp_orders AS o
LEFT JOIN (SELECT order_id, sum(quantity * unit_price_cents)::bigint AS total_cents, count(*) AS lines
           FROM tmp_items GROUP BY order_id) AS t ON t.order_id = o.id
ORDER BY o.id;

INSERT INTO public.order_items (id, order_id, sku, quantity, unit_price_cents)
SELECT id, order_id, sku, quantity, unit_price_cents FROM tmp_items ORDER BY id;

-- events: the last year of activity, ids in time order; a few very active users
-- produce most of the events (user_id skewed towards early users).
INSERT INTO public.events (id, user_id, kind, payload, occurred_at)
SELECT g,
       user_id,
       kind,
       CASE kind
         WHEN 'page_view'   THEN jsonb_build_object('path', '/products/' || (1 + floor(5000 * random() ^ 2))::int,
                                                    'ref', (ARRAY['direct','direct','google','google','google','email','ads'])[1 + floor(random() * 7)::int])
         WHEN 'click'       THEN jsonb_build_object('target', (ARRAY['buy','wishlist','share','reviews'])[1 + floor(random() * 4)::int])
         WHEN 'search'      THEN jsonb_build_object('q', (ARRAY['shoes','laptop','coffee','desk','lamp','book'])[1 + floor(random() * 6)::int],
                                                    'results', floor(random() * 200)::int)
         WHEN 'add_to_cart' THEN jsonb_build_object('sku', 'SKU-' || lpad((1 + floor(5000 * random() ^ 2))::int::text, 5, '0'),
                                                    'qty', 1 + floor(random() * 3)::int)
         WHEN 'checkout'    THEN jsonb_build_object('step', (ARRAY['cart','address','payment','done'])[1 + floor(random() * 4)::int])
         ELSE                    jsonb_build_object('method', (ARRAY['password','google','sso'])[1 + floor(random() * 3)::int])
       END,
       occurred_at
FROM (
  SELECT g,
         1 + floor(:n_users * random() ^ 3)::bigint AS user_id,
         CASE WHEN r < 0.60 THEN 'page_view' WHEN r < 0.80 THEN 'click' WHEN r < 0.88 THEN 'search'
              WHEN r < 0.94 THEN 'add_to_cart' WHEN r < 0.97 THEN 'checkout' ELSE 'login' END AS kind,
         date_trunc('second', timestamptz :'ref_now' - interval '365 days'
                              + (g::float8 / :n_events) * interval '365 days') AS occurred_at
  FROM (SELECT g, random() AS r FROM generate_series(1, :n_events) AS g) AS s0
) AS s;

-- Identity columns continue after the loaded ids.
SELECT setval(pg_get_serial_sequence('public.users', 'id'),       (SELECT max(id) FROM public.users)) \g /dev/null
SELECT setval(pg_get_serial_sequence('public.coupons', 'id'),     (SELECT max(id) FROM public.coupons)) \g /dev/null
SELECT setval(pg_get_serial_sequence('public.orders', 'id'),      (SELECT max(id) FROM public.orders)) \g /dev/null
SELECT setval(pg_get_serial_sequence('public.order_items', 'id'), (SELECT max(id) FROM public.order_items)) \g /dev/null
SELECT setval(pg_get_serial_sequence('public.events', 'id'),      (SELECT max(id) FROM public.events)) \g /dev/null

-- The foreign-key triggers were skipped: make sure nothing is orphaned (the events
-- check is what migration 0008 will rely on).
DO $$
DECLARE bad bigint;
BEGIN
  SELECT count(*) INTO bad FROM public.orders o WHERE NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = o.user_id);
  IF bad > 0 THEN RAISE EXCEPTION 'orders: % rows with unknown user_id', bad; END IF;
  SELECT count(*) INTO bad FROM public.orders o WHERE o.coupon_id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM public.coupons c WHERE c.id = o.coupon_id);
  IF bad > 0 THEN RAISE EXCEPTION 'orders: % rows with unknown coupon_id', bad; END IF;
  SELECT count(*) INTO bad FROM public.order_items i WHERE NOT EXISTS (SELECT 1 FROM public.orders o WHERE o.id = i.order_id);
  IF bad > 0 THEN RAISE EXCEPTION 'order_items: % rows with unknown order_id', bad; END IF;
  SELECT count(*) INTO bad FROM public.events e WHERE NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = e.user_id);
  IF bad > 0 THEN RAISE EXCEPTION 'events: % rows with unknown user_id', bad; END IF;
END
$$;

COMMIT;

RESET session_replication_role;
