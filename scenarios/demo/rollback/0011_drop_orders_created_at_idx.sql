-- Rollback of 0010: the reporting dashboard's index goes, concurrently so writes to
-- orders keep flowing (alone in its file: it cannot run in a transaction block).
DROP INDEX CONCURRENTLY IF EXISTS public.orders_created_at_idx;
