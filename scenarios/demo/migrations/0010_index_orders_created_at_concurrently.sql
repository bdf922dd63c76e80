-- Index orders by creation time for the reporting dashboard, built CONCURRENTLY so
-- writes to orders keep flowing. CREATE INDEX CONCURRENTLY cannot run inside a
-- transaction block, so it must stay the only statement in this file.
CREATE INDEX CONCURRENTLY orders_created_at_idx ON public.orders (created_at);
