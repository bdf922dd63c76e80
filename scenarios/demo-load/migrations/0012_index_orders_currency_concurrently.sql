-- Index orders by currency, CONCURRENTLY: it waits for the long
-- transaction's snapshot too, but holds nothing the app's reads and writes
-- wait for, so it can run during normal hours (scenarios/demo-load.yaml).
CREATE INDEX CONCURRENTLY orders_currency_idx ON public.orders (currency);
