-- A backfill in batches of 50,000 ids, as teams write them to keep each
-- UPDATE short (here in one transaction, as the file runs in one).
DO $$
DECLARE
    lo  bigint;
    top bigint;
BEGIN
    SELECT min(id), max(id) INTO lo, top FROM public.events;
    WHILE lo <= top LOOP
        UPDATE public.events SET source = 'app'
         WHERE id >= lo AND id < lo + 50000 AND kind = 'click';
        lo := lo + 50000;
    END LOOP;
END $$;
