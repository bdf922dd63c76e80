-- A gift note on orders. Cheap: a nullable column without a default is a
-- catalog-only change (a few milliseconds under ACCESS EXCLUSIVE). But the
-- lock must be granted first: behind production's long transaction on
-- orders (a report, a pg_dump), the request waits, and every read and write
-- of orders queues behind it (scenarios/demo-load.yaml).
ALTER TABLE public.orders ADD COLUMN gift_note text;
