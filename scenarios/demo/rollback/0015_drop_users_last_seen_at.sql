-- Rollback of 0005 and 0009: users.last_seen_at goes, with the backfilled values and
-- whatever the app recorded since the release.
ALTER TABLE public.users DROP COLUMN last_seen_at;
