-- Rollback of 0008: the foreign key from events to users goes (a brief ACCESS
-- EXCLUSIVE lock on both tables, no scan).
ALTER TABLE public.events DROP CONSTRAINT events_user_id_fkey;
