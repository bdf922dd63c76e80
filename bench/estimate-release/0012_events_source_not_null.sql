-- SET NOT NULL scans the whole of events, under ACCESS EXCLUSIVE, to prove
-- no row is NULL.
ALTER TABLE public.events ALTER COLUMN source SET NOT NULL;
