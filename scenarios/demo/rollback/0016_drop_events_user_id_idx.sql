-- Rollback of 0004: the activity page's index goes, concurrently (alone in its file).
DROP INDEX CONCURRENTLY IF EXISTS public.events_user_id_idx;
