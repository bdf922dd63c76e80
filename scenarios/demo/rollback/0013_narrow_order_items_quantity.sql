-- Rollback of 0007: order_items.quantity back to integer, so the previous app version's
-- packing slip (repeat(text, integer)) works again. A type change: order_items is
-- rewritten under an ACCESS EXCLUSIVE lock, as it was by 0007. Narrowing fails if a
-- quantity written since the release does not fit in an integer.
ALTER TABLE public.order_items ALTER COLUMN quantity TYPE integer;
