-- Add users.last_seen_at. Safe: a nullable column without a default is a metadata-only
-- change (brief ACCESS EXCLUSIVE lock, no table rewrite).
ALTER TABLE public.users ADD COLUMN last_seen_at timestamptz;
