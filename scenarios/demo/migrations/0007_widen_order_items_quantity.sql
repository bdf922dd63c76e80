-- Widen order_items.quantity from integer to bigint for bulk B2B orders. Hazard: a
-- column type change rewrites order_items and rebuilds its indexes under an
-- ACCESS EXCLUSIVE lock.
ALTER TABLE public.order_items ALTER COLUMN quantity TYPE bigint;
